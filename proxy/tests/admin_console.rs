//! The admin console through the real proxy, driven by psql and raw clients against a
//! throwaway cluster: every command, a non-admin and a wrong password refused, KILL
//! ending a session that is running a statement (upstream too), BLOCK ending the running
//! sessions of an address, UNBLOCK letting it in again, a failed-login block ending the
//! attacker's live sessions, and hostile console input answered with errors.

mod common;

use common::{
    cluster, finish_raw_login, psql, raw_connect, raw_query, read_msg, startup_packet, Proxy,
    ProxyOptions,
};
use pgvigil::demo::cluster::Cluster;
use std::io::Write;
use std::net::TcpStream;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn pg() -> &'static Cluster {
    static PG: OnceLock<Cluster> = OnceLock::new();
    PG.get_or_init(cluster)
}

const ADMIN: &str = "[admin]\nusers = [\"app_user\"]\n";

fn start(extra: &str, opts: ProxyOptions) -> Proxy {
    Proxy::start(
        pg(),
        ProxyOptions {
            extra: format!("{ADMIN}{extra}"),
            ..opts
        },
    )
}

/// Runs a console command as the admin `app_user` with psql (`-A -t`: rows as `a|b`).
fn console(proxy: &Proxy, sql: &str) -> (bool, String, String) {
    psql(
        &proxy.conninfo(
            "app_user",
            "app_pass",
            "pgvigil",
            "sslmode=disable connect_timeout=20",
        ),
        sql,
    )
}

fn ok(r: (bool, String, String)) -> String {
    assert!(r.0, "psql failed: {}", r.2);
    r.1
}

/// A raw plaintext session of `app_user` on `app`, optionally behind a PROXY v1 header
/// claiming `claimed` as the client address.
fn victim(proxy: &Proxy, claimed: Option<&str>) -> Result<TcpStream, String> {
    let mut s = raw_connect(proxy.port);
    if let Some(addr) = claimed {
        s.write_all(format!("PROXY TCP4 {addr} 127.0.0.1 40000 5432\r\n").as_bytes())
            .expect("PROXY header");
    }
    s.write_all(&startup_packet(&[
        ("user", "app_user"),
        ("database", "app"),
    ]))
    .expect("startup");
    finish_raw_login(&mut s, "app_pass").map_err(|e| format!("{e:?}"))?;
    Ok(s)
}

/// Sends a query without waiting for its answer.
fn send_query(s: &mut TcpStream, sql: &str) {
    let mut q = sql.as_bytes().to_vec();
    q.push(0);
    s.write_all(&common::frontend_msg(b'Q', &q)).expect("send");
}

/// Reads the reply of a query sent with [`send_query`], up to ReadyForQuery.
fn drain(s: &mut TcpStream) {
    while read_msg(s).expect("reply").0 != b'Z' {}
}

/// Reads until a FATAL ErrorResponse or the end; returns its SQLSTATE and message.
fn fatal_of(s: &mut TcpStream) -> Option<(String, String)> {
    let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
    loop {
        let (tag, body) = read_msg(s).ok()?;
        if tag == b'E' {
            let f = common::error_fields(&body);
            if f.get(&'S').map(String::as_str) == Some("FATAL") {
                return Some((f[&'C'].clone(), f[&'M'].clone()));
            }
        }
    }
}

/// The session id of the one session on database `app` in SHOW SESSIONS.
fn app_session(rows: &str) -> String {
    let ids: Vec<&str> = rows
        .lines()
        .filter(|l| l.split('|').nth(2) == Some("app"))
        .filter_map(|l| l.split('|').next())
        .collect();
    assert_eq!(ids.len(), 1, "one app session expected in:\n{rows}");
    ids[0].to_string()
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn every_show_command_answers_with_typed_rows() {
    let proxy = start("", ProxyOptions::default());
    let version = ok(console(&proxy, "SHOW VERSION"));
    assert!(version.starts_with("pgvigil "), "{version}");
    let mut v = victim(&proxy, None).expect("victim login");
    raw_query(&mut v, "select 1").expect("select 1");
    raw_query(&mut v, "create temp table t(x int)").expect("create");
    // A statement in flight: state, class, command and its age.
    send_query(&mut v, "select pg_sleep(3)");
    std::thread::sleep(Duration::from_millis(500));
    let sessions = ok(console(&proxy, "show sessions;"));
    let row: Vec<&str> = sessions
        .lines()
        .find(|l| l.split('|').nth(2) == Some("app"))
        .unwrap_or_else(|| panic!("no app session in {sessions}"))
        .split('|')
        .collect();
    assert_eq!(row.len(), 16, "{row:?}");
    assert_eq!(row[1], "app_user");
    assert_eq!(row[3], "127.0.0.1");
    assert_eq!(row[6], "f", "tls");
    assert!(row[7].starts_with("scram-sha-256"), "{row:?}");
    assert_eq!(row[9], "2", "statements finished: {row:?}");
    assert!(row[10].parse::<u64>().unwrap() > 0 && row[11].parse::<u64>().unwrap() > 0);
    assert_eq!(row[12], "active");
    assert!(!row[13].is_empty(), "class: {row:?}");
    assert_eq!(row[14], "SELECT");
    assert!(row[15].starts_with("00:00:0"), "age {}", row[15]);
    // The console's own session is listed too.
    assert!(sessions
        .lines()
        .any(|l| l.split('|').nth(2) == Some("pgvigil")));
    drain(&mut v);

    let stats = ok(console(&proxy, "SHOW STATS"));
    let app: Vec<&str> = stats
        .lines()
        .find(|l| l.starts_with("app|app_user|"))
        .unwrap_or_else(|| panic!("{stats}"))
        .split('|')
        .collect();
    assert_eq!(app.len(), 14);
    assert_eq!(app[2], "1", "sessions");
    assert_eq!(app[3], "3", "statements: {app:?}");
    assert!(app[4].parse::<u64>().unwrap() >= 1, "read: {app:?}");
    assert_eq!(app[8], "1", "ddl: {app:?}");
    // A denied statement counts as an error and a denial.
    raw_query(&mut v, "create role nope").expect_err("app_user may not create roles");
    let stats = ok(console(&proxy, "SHOW STATS"));
    let app: Vec<&str> = stats
        .lines()
        .find(|l| l.starts_with("app|app_user|"))
        .unwrap()
        .split('|')
        .collect();
    assert_eq!((app[11], app[12]), ("1", "1"), "errors, denied: {app:?}");

    let rules = ok(console(&proxy, "SHOW RULES"));
    assert!(
        rules
            .lines()
            .any(|l| l.starts_with("failed-logins|auth_failure|high|block|5|00:10:00")),
        "{rules}"
    );
    let config = ok(console(&proxy, "SHOW CONFIG"));
    assert!(config.contains("admin.database|pgvigil"), "{config}");
    assert!(config.contains("auth.mode|password"), "{config}");
    assert!(!config.to_lowercase().contains("app_pass"));
    assert_eq!(ok(console(&proxy, "SHOW BLOCKS")), "");
    assert_eq!(ok(console(&proxy, "SHOW FINDINGS 5")), "");
    assert!(ok(console(&proxy, "SHOW HELP")).contains("KILL '<session id>'"));

    // Typed columns, as the RowDescription says.
    let oids = column_types(&proxy, "SHOW SESSIONS");
    assert_eq!(oids[3], 869, "client_addr is inet");
    assert_eq!(oids[8], 1184, "started is timestamptz");
    assert_eq!(oids[9], 20, "statements is int8");
    assert_eq!(oids[15], 1186, "statement_age is interval");
}

/// The type oids of a console result set, read from the RowDescription.
fn column_types(proxy: &Proxy, sql: &str) -> Vec<u32> {
    let mut s = raw_connect(proxy.port);
    s.write_all(&startup_packet(&[
        ("user", "app_user"),
        ("database", "pgvigil"),
    ]))
    .unwrap();
    finish_raw_login(&mut s, "app_pass").expect("console login");
    send_query(&mut s, sql);
    loop {
        let (tag, body) = read_msg(&mut s).expect("reply");
        if tag == b'T' {
            let n = u16::from_be_bytes([body[0], body[1]]) as usize;
            let mut at = 2;
            let mut out = Vec::new();
            for _ in 0..n {
                let end = at + body[at..].iter().position(|&b| b == 0).unwrap();
                at = end + 1 + 6;
                out.push(u32::from_be_bytes(body[at..at + 4].try_into().unwrap()));
                at += 12;
            }
            return out;
        }
    }
}

#[test]
fn only_admins_with_the_right_password_get_in() {
    let proxy = start("", ProxyOptions::default());
    let (okay, _, err) = psql(
        &proxy.conninfo("postgres", "x", "pgvigil", "sslmode=disable"),
        "SHOW SESSIONS",
    );
    assert!(!okay);
    assert!(
        err.contains("may not use the pgvigil admin console"),
        "{err}"
    );
    let (okay, _, err) = psql(
        &proxy.conninfo("app_user", "wrong", "pgvigil", "sslmode=disable"),
        "SHOW SESSIONS",
    );
    assert!(!okay);
    assert!(err.contains("password authentication failed"), "{err}");
    let refused = proxy.wait_event("non-admin refused", |e| {
        e["type"] == "auth_failure" && e["user"] == "postgres" && e["database"] == "pgvigil"
    });
    assert_eq!(refused["sqlstate"], "28000");
    // Without [admin] users, nobody is an admin; the name is still the console's.
    let closed = Proxy::start(pg(), ProxyOptions::default());
    let (okay, _, err) = psql(
        &closed.conninfo("app_user", "app_pass", "pgvigil", "sslmode=disable"),
        "SHOW SESSIONS",
    );
    assert!(!okay && err.contains("may not use"), "{err}");
}

#[test]
fn hostile_console_input_gets_errors_and_the_console_survives() {
    let proxy = start("", ProxyOptions::default());
    for bad in [
        "select * from pg_shadow",
        "SHOW SESSIONS; KILL 'x'",
        "KILL 'unterminated",
        "BLOCK 'not-an-address'",
        "BLOCK '10.0.0.1' FOR '9999 days'",
        "SHOW FINDINGS 99999999999999999999999",
        "\u{7f}\u{1}",
    ] {
        let (okay, _, err) = console(&proxy, bad);
        assert!(!okay, "{bad:?} accepted");
        assert!(err.contains("ERROR"), "{bad:?}: {err}");
    }
    let (okay, _, err) = console(&proxy, "KILL 'no-such-session'");
    assert!(!okay && err.contains("no session with id"), "{err}");
    // The extended protocol is refused with an error, and the connection stays usable.
    let mut s = raw_connect(proxy.port);
    s.write_all(&startup_packet(&[
        ("user", "app_user"),
        ("database", "pgvigil"),
    ]))
    .unwrap();
    finish_raw_login(&mut s, "app_pass").expect("console login");
    let mut parse = b"\0SHOW VERSION\0".to_vec();
    parse.extend_from_slice(&[0, 0]);
    s.write_all(&common::frontend_msg(b'P', &parse)).unwrap();
    s.write_all(&common::frontend_msg(b'S', &[])).unwrap();
    let (tag, body) = read_msg(&mut s).unwrap();
    assert_eq!(tag, b'E');
    assert_eq!(common::error_fields(&body)[&'C'], "0A000");
    assert_eq!(read_msg(&mut s).unwrap().0, b'Z');
    let rows = raw_query(&mut s, "show version").expect("simple query after the refusal");
    assert!(rows[0].starts_with("pgvigil"));
    // A huge message is refused without harm to others.
    let mut huge = vec![b'a'; 200 * 1024];
    huge.push(0);
    let _ = s.write_all(&common::frontend_msg(b'Q', &huge));
    assert!(console(&proxy, "SHOW VERSION").0);
}

#[test]
fn kill_ends_a_running_session_and_its_statement() {
    let proxy = start("", ProxyOptions::default());
    let mut v = victim(&proxy, None).expect("victim login");
    send_query(&mut v, "select pg_sleep(60) /* kill-me */");
    std::thread::sleep(Duration::from_millis(500));
    let id = app_session(&ok(console(&proxy, "SHOW SESSIONS")));
    let started = Instant::now();
    assert_eq!(ok(console(&proxy, &format!("KILL '{id}'"))), "KILL 1");
    let (code, msg) = fatal_of(&mut v).expect("FATAL to the killed client");
    assert_eq!(code, "57P01");
    assert!(msg.contains("administrator command"), "{msg}");
    assert!(started.elapsed() < Duration::from_secs(10));
    // The statement is not left running on the server.
    wait_for(
        "the statement to stop upstream",
        Duration::from_secs(10),
        || {
            pg().psql(
            "postgres",
            "postgres",
            "select count(*) from pg_stat_activity where query like '%kill-me%' and pid <> pg_backend_pid()",
        )
        .map(|o| o.trim() == "0")
        .unwrap_or(false)
        },
    );
    let end = proxy.wait_event("session_end of the killed session", |e| {
        e["type"] == "session_end" && e["session_id"] == id.as_str()
    });
    assert_eq!(end["ended_by"], "administrator app_user");
    let admin = proxy.wait_event("admin KILL", |e| {
        e["type"] == "admin" && e["action"] == "KILL"
    });
    assert_eq!(admin["user"], "app_user");
    assert_eq!(admin["target"], id.as_str());
    assert_eq!(admin["result"], "ok");
    // It is gone from the registry.
    let after = ok(console(&proxy, "SHOW SESSIONS"));
    assert!(!after.contains(&id), "{after}");
    let (okay, _, _) = console(&proxy, &format!("KILL '{id}'"));
    assert!(!okay, "a second KILL of the same id is an error");
}

#[test]
fn block_ends_running_sessions_and_unblock_lets_the_address_in() {
    // Clients arrive through a trusted load balancer (PROXY headers), so the victim can
    // have a non-loopback address while everything runs on 127.0.0.1.
    let proxy = start(
        "",
        ProxyOptions {
            proxy_protocol: true,
            tls_mode: "disable",
            ..ProxyOptions::default()
        },
    );
    let mut admin = victim_console(&proxy, "127.0.0.1");
    let mut v1 = victim(&proxy, Some("203.0.113.9")).expect("victim 1");
    let mut v2 = victim(&proxy, Some("203.0.113.9")).expect("victim 2");
    let mut bystander = victim(&proxy, Some("203.0.113.10")).expect("bystander");
    send_query(&mut v1, "select pg_sleep(60)");
    std::thread::sleep(Duration::from_millis(300));
    raw_query(&mut admin, "BLOCK '203.0.113.9' FOR '10m'").expect("BLOCK");
    for v in [&mut v1, &mut v2] {
        let (code, msg) = fatal_of(v).expect("FATAL to a blocked address's session");
        assert_eq!(code, "57P01");
        assert!(
            msg.contains("203.0.113.9 is blocked by administrator app_user until"),
            "{msg}"
        );
    }
    assert_eq!(
        raw_query(&mut bystander, "select 1").expect("bystander"),
        ["1"]
    );
    let refused = victim(&proxy, Some("203.0.113.9")).expect_err("blocked login");
    assert!(refused.contains("28000"), "{refused}");
    let blocks = raw_query(&mut admin, "SHOW BLOCKS").expect("SHOW BLOCKS");
    assert_eq!(blocks, ["203.0.113.9"]);
    raw_query(&mut admin, "UNBLOCK '203.0.113.9'").expect("UNBLOCK");
    let mut back = victim(&proxy, Some("203.0.113.9")).expect("login after UNBLOCK");
    assert_eq!(raw_query(&mut back, "select 2").unwrap(), ["2"]);
    let err = raw_query(&mut admin, "UNBLOCK '203.0.113.9'").expect_err("not blocked");
    assert!(err[&'M'].contains("is not blocked"));
    wait_for(
        "both blocked sessions' session_end",
        Duration::from_secs(10),
        || {
            proxy
                .audit_events()
                .iter()
                .filter(|e| e["type"] == "session_end" && e["ended_by"] == "administrator app_user")
                .count()
                == 2
        },
    );
    wait_for("three admin events", Duration::from_secs(10), || {
        proxy
            .audit_events()
            .iter()
            .filter(|e| e["type"] == "admin")
            .count()
            == 3
    });
    let actions: Vec<String> = proxy
        .audit_events()
        .into_iter()
        .filter(|e| e["type"] == "admin")
        .map(|e| format!("{} {} {}", e["action"], e["target"], e["result"]))
        .collect();
    assert_eq!(
        actions,
        [
            "\"BLOCK\" \"203.0.113.9\" \"ok\"",
            "\"UNBLOCK\" \"203.0.113.9\" \"ok\"",
            "\"UNBLOCK\" \"203.0.113.9\" \"error\""
        ]
    );
}

/// A console session behind a PROXY header.
fn victim_console(proxy: &Proxy, claimed: &str) -> TcpStream {
    let mut s = raw_connect(proxy.port);
    s.write_all(format!("PROXY TCP4 {claimed} 127.0.0.1 40001 5432\r\n").as_bytes())
        .unwrap();
    s.write_all(&startup_packet(&[
        ("user", "app_user"),
        ("database", "pgvigil"),
    ]))
    .unwrap();
    finish_raw_login(&mut s, "app_pass").expect("console login");
    s
}

#[test]
fn a_failed_login_block_ends_the_attackers_running_sessions() {
    let proxy = start(
        "",
        ProxyOptions {
            proxy_protocol: true,
            tls_mode: "disable",
            ..ProxyOptions::default()
        },
    );
    let mut live = victim(&proxy, Some("198.51.100.7")).expect("a session of the address");
    send_query(&mut live, "select pg_sleep(60)");
    for _ in 0..6 {
        let mut s = raw_connect(proxy.port);
        s.write_all(b"PROXY TCP4 198.51.100.7 127.0.0.1 40002 5432\r\n")
            .unwrap();
        s.write_all(&startup_packet(&[
            ("user", "app_user"),
            ("database", "app"),
        ]))
        .unwrap();
        assert!(finish_raw_login(&mut s, "wrong").is_err());
    }
    let (code, msg) = fatal_of(&mut live).expect("FATAL to the running session");
    assert_eq!(code, "57P01");
    assert!(msg.contains("blocked by rule failed-logins"), "{msg}");
    let end = proxy.wait_event("session_end", |e| {
        e["type"] == "session_end" && e["client_addr"] == "198.51.100.7"
    });
    assert_eq!(end["ended_by"], "rule failed-logins");
    let mut admin = victim_console(&proxy, "127.0.0.1");
    let findings = raw_query(&mut admin, "SHOW FINDINGS 1").expect("SHOW FINDINGS");
    assert_eq!(findings.len(), 1);
    let blocks = raw_query(&mut admin, "SHOW BLOCKS").unwrap();
    assert_eq!(blocks, ["198.51.100.7"]);
}

#[test]
fn reload_from_the_console_applies_the_new_file() {
    let proxy = start("", ProxyOptions::default());
    let before = ok(console(&proxy, "SHOW RULES"));
    assert!(before.contains("failed-logins|"));
    let path = &proxy.config_path;
    let text = std::fs::read_to_string(path).unwrap();
    std::fs::write(
        path,
        format!("{text}\n[rules]\ndisable = [\"failed-logins\"]\n"),
    )
    .unwrap();
    assert_eq!(ok(console(&proxy, "RELOAD")), "RELOAD");
    wait_for("the reload", Duration::from_secs(10), || {
        !ok(console(&proxy, "SHOW RULES")).contains("failed-logins|")
    });
    proxy.wait_event("admin RELOAD", |e| {
        e["type"] == "admin" && e["action"] == "RELOAD"
    });
}

#[test]
fn passthrough_mode_authenticates_the_console_against_the_server() {
    let proxy = start(
        "",
        ProxyOptions {
            auth_mode: "passthrough",
            ..ProxyOptions::default()
        },
    );
    assert!(ok(console(&proxy, "SHOW VERSION")).starts_with("pgvigil "));
    let (okay, _, err) = psql(
        &proxy.conninfo("app_user", "wrong", "pgvigil", "sslmode=disable"),
        "SHOW VERSION",
    );
    assert!(
        !okay && err.contains("password authentication failed"),
        "{err}"
    );
}

#[test]
fn an_admin_blocking_its_own_address_gets_the_answer_then_is_ended() {
    let proxy = start("[rules]\nblock_loopback = true\n", ProxyOptions::default());
    let mut v = victim(&proxy, None).expect("victim");
    let mut s = raw_connect(proxy.port);
    s.write_all(&startup_packet(&[
        ("user", "app_user"),
        ("database", "pgvigil"),
    ]))
    .unwrap();
    finish_raw_login(&mut s, "app_pass").expect("console login");
    raw_query(&mut s, "BLOCK '127.0.0.1' FOR '2s'").expect("the BLOCK answer arrives");
    let (code, _) = fatal_of(&mut s).expect("the console session is ended too");
    assert_eq!(code, "57P01");
    let (code, _) = fatal_of(&mut v).expect("the other session is ended");
    assert_eq!(code, "57P01");
    let refused = victim(&proxy, None).expect_err("blocked");
    assert!(refused.contains("28000"), "{refused}");
    // The block expires on its own.
    std::thread::sleep(Duration::from_millis(2100));
    victim(&proxy, None).expect("let in after the block expired");
}

#[test]
fn show_sessions_with_many_sessions_stays_quick() {
    let proxy = start("", ProxyOptions::default());
    let mut held = Vec::new();
    for _ in 0..60 {
        held.push(victim(&proxy, None).expect("login"));
    }
    for s in held.iter_mut().take(30) {
        send_query(s, "select pg_sleep(5)");
    }
    let mut admin = raw_connect(proxy.port);
    admin
        .write_all(&startup_packet(&[
            ("user", "app_user"),
            ("database", "pgvigil"),
        ]))
        .unwrap();
    finish_raw_login(&mut admin, "app_pass").expect("console login");
    let mut worst = Duration::ZERO;
    for _ in 0..20 {
        let t = Instant::now();
        let rows = raw_query(&mut admin, "SHOW SESSIONS").unwrap();
        worst = worst.max(t.elapsed());
        assert_eq!(rows.len(), 61);
    }
    let t = Instant::now();
    raw_query(&mut admin, "SHOW STATS").unwrap();
    let stats = t.elapsed();
    eprintln!(
        "SHOW SESSIONS with 61 sessions (30 busy): worst of 20 {worst:?}; SHOW STATS {stats:?}"
    );
    assert!(worst < Duration::from_secs(1), "{worst:?}");
}

#[test]
fn shutdown_ends_console_sessions_after_the_drain_period() {
    let mut proxy = start(
        "",
        ProxyOptions {
            shutdown_timeout: "1s",
            ..ProxyOptions::default()
        },
    );
    let mut s = raw_connect(proxy.port);
    s.write_all(&startup_packet(&[
        ("user", "app_user"),
        ("database", "pgvigil"),
    ]))
    .unwrap();
    finish_raw_login(&mut s, "app_pass").expect("console login");
    assert!(raw_query(&mut s, "SHOW VERSION").is_ok());
    let started = Instant::now();
    assert!(proxy.terminate(Duration::from_secs(10)), "pgvigil exits");
    let (code, _) = fatal_of(&mut s).expect("FATAL before the close");
    assert_eq!(code, "57P01");
    assert!(started.elapsed() < Duration::from_secs(6));
    let end = proxy
        .audit_events()
        .into_iter()
        .find(|e| e["type"] == "session_end" && e["database"] == "pgvigil")
        .expect("the console session's session_end");
    assert!(end.get("ended_by").is_none(), "{end}");
}
