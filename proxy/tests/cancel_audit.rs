//! Cancel requests through the proxy, against a real server: each one is an audit event
//! (`type: "cancel"`) naming the canceller's address and the target session; a key sent
//! from another address than its session's, or an unknown key, is refused and cancels
//! nothing; and libpq 17+'s cancel over TLS (psycopg 3's `cancel_safe()`, binary wheel
//! with libpq 18) works, the connection ending with a TLS close_notify as PostgreSQL ends
//! it.

mod common;
use common::*;

use pgvigil::demo::Cluster;
use serde_json::Value;
use std::io::Write;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn pg() -> &'static Cluster {
    static PG: OnceLock<Cluster> = OnceLock::new();
    PG.get_or_init(cluster)
}

/// A PROXY v1 header for a client at `ip`.
fn proxy_header(ip: &str) -> Vec<u8> {
    format!("PROXY TCP4 {ip} 127.0.0.1 40000 6432\r\n").into_bytes()
}

/// Logs in as the (trusted) superuser with a PROXY header from `ip`; returns the session
/// and the cancel key the proxy handed out.
fn login_from(proxy: &Proxy, ip: &str, app: &str) -> (TcpStream, i32, i32) {
    let mut s = raw_connect(proxy.port);
    let mut hello = proxy_header(ip);
    hello.extend(startup_packet(&[
        ("user", "postgres"),
        ("database", "postgres"),
        ("application_name", app),
    ]));
    s.write_all(&hello).expect("send startup");
    let mut key = None;
    loop {
        let (tag, body) = read_msg(&mut s).expect("login reply");
        match tag {
            b'K' => {
                let pid = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                let secret = i32::from_be_bytes([body[4], body[5], body[6], body[7]]);
                key = Some((pid, secret));
            }
            // pgvigil asks every client for a password before it opens a server
            // connection; the server trusts this one.
            b'R' if body == [0, 0, 0, 3] => s
                .write_all(&frontend_msg(b'p', b"unused\0"))
                .expect("send password"),
            b'E' => panic!("login refused: {:?}", error_fields(&body)),
            b'Z' => break,
            _ => {}
        }
    }
    let (pid, secret) = key.expect("a BackendKeyData");
    (s, pid, secret)
}

/// Sends a CancelRequest from `ip` and waits until the proxy closes the connection.
fn cancel_from(proxy: &Proxy, ip: &str, pid: i32, secret: i32) {
    let mut s = raw_connect(proxy.port);
    let mut msg = proxy_header(ip);
    msg.extend_from_slice(&16u32.to_be_bytes());
    msg.extend_from_slice(&80877102u32.to_be_bytes());
    msg.extend_from_slice(&pid.to_be_bytes());
    msg.extend_from_slice(&secret.to_be_bytes());
    s.write_all(&msg).expect("send cancel");
    let (got, closed) = read_until_closed(&mut s, Duration::from_secs(15));
    assert!(closed.is_some(), "cancel connection left open");
    assert!(got.is_empty(), "a cancel gets no reply, got {got:?}");
}

/// Whether the session tagged `app` is running `pg_sleep` on the server now.
fn sleeping(app: &str) -> bool {
    let sql = format!(
        "select count(*) from pg_stat_activity where application_name = '{app}' \
         and state = 'active' and query like '%pg_sleep%'"
    );
    pg().psql("postgres", "postgres", &sql)
        .map(|o| o.trim() == "1")
        .unwrap_or(false)
}

fn cancel_events(proxy: &Proxy, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found: Vec<Value> = proxy
            .audit_events()
            .into_iter()
            .filter(|e| e["type"] == "cancel")
            .collect();
        if found.len() >= n || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn cancels_are_audited_and_refused_from_elsewhere() {
    let proxy = Proxy::start(
        pg(),
        ProxyOptions {
            proxy_protocol: true,
            // The claimed addresses are not loopback: their passwords (pgvigil asks every
            // client for one) must be allowed in plaintext.
            tls_mode: "disable",
            ..ProxyOptions::default()
        },
    );
    let app = "cancel_audit";
    let (mut session, pid, secret) = login_from(&proxy, "10.0.0.1", app);
    let mut q = b"SELECT pg_sleep(30)".to_vec();
    q.push(0);
    session.write_all(&frontend_msg(b'Q', &q)).expect("query");
    wait_until("the query runs", Duration::from_secs(15), || sleeping(app));

    // A guessed key, then the right key from another address: nothing is cancelled.
    cancel_from(&proxy, "10.0.0.1", pid, secret.wrapping_add(1));
    cancel_from(&proxy, "10.0.0.2", pid, secret);
    std::thread::sleep(Duration::from_millis(500));
    assert!(sleeping(app), "a refused cancel stopped the query");

    // The session's own address: cancelled.
    let started = Instant::now();
    cancel_from(&proxy, "10.0.0.1", pid, secret);
    loop {
        let (tag, body) = read_msg(&mut session).expect("query reply");
        if tag == b'E' {
            assert_eq!(
                error_fields(&body)[&'C'],
                "57014",
                "{:?}",
                error_fields(&body)
            );
            break;
        }
    }
    assert!(started.elapsed() < Duration::from_secs(20));

    let start = proxy.wait_event("session_start", |e| e["type"] == "session_start");
    let events = cancel_events(&proxy, 3);
    assert_eq!(events.len(), 3, "{events:#?}");
    // Each cancel is its own connection and task: their events may be written in any
    // order, so each is found by what it says.
    let find = |what: &str, pred: &dyn Fn(&Value) -> bool| {
        events
            .iter()
            .find(|e| pred(e))
            .unwrap_or_else(|| panic!("no {what} cancel event: {events:#?}"))
    };
    let unknown = find("unknown-key", &|e| e["reason"] == "unknown key");
    let elsewhere = find("other-address", &|e| {
        e["reason"]
            .as_str()
            .is_some_and(|r| r.contains("another address"))
    });
    let forwarded = find("forwarded", &|e| e["result"] == "forwarded");
    assert_eq!(unknown["result"], "refused", "{unknown}");
    assert_eq!(unknown["reason"], "unknown key", "{unknown}");
    assert_eq!(unknown["client_addr"], "10.0.0.1", "{unknown}");
    assert_eq!(unknown["target_session_id"], Value::Null, "{unknown}");

    assert_eq!(elsewhere["result"], "refused", "{elsewhere}");
    assert!(
        elsewhere["reason"]
            .as_str()
            .is_some_and(|r| r.contains("another address")),
        "{elsewhere}"
    );
    assert_eq!(elsewhere["client_addr"], "10.0.0.2", "{elsewhere}");
    assert_eq!(elsewhere["target_session_id"], start["session_id"]);
    assert_eq!(elsewhere["target_client_addr"], "10.0.0.1");

    assert_eq!(forwarded["result"], "forwarded", "{forwarded}");
    assert_eq!(forwarded["reason"], Value::Null, "{forwarded}");
    assert_eq!(forwarded["client_addr"], "10.0.0.1", "{forwarded}");
    assert_eq!(forwarded["target_session_id"], start["session_id"]);
    assert_eq!(forwarded["target_user"], "postgres");
    assert_eq!(forwarded["target_database"], "postgres");
    assert_ne!(
        forwarded["session_id"], start["session_id"],
        "the cancel connection has its own id"
    );
    assert_eq!(
        proxy.metric("pgvigil_cancel_requests_total{result=\"forwarded\"}"),
        1.0
    );
}

/// psycopg 3 with libpq 17+: `cancel_safe()` cancels over TLS (PQcancelBlocking) and
/// raises if the connection does not end cleanly.
const PSYCOPG_CANCEL: &str = r#"
import sys, threading, time
import psycopg
from psycopg import pq
assert pq.version() >= 170000, f"libpq {pq.version()} cancels without TLS"
conn = psycopg.connect(sys.argv[1], autocommit=True)
assert conn.pgconn.ssl_in_use, "the session is not TLS"
watch = psycopg.connect(sys.argv[1], autocommit=True)
result = []
def run():
    try:
        conn.execute("SELECT pg_sleep(30)")
        result.append("not cancelled")
    except psycopg.errors.QueryCanceled:
        result.append("cancelled")
    except Exception as e:
        result.append(repr(e))
t = threading.Thread(target=run)
t.start()
deadline = time.time() + 15
while time.time() < deadline:
    n = watch.execute("select count(*) from pg_stat_activity where state = 'active' "
                      "and query = 'SELECT pg_sleep(30)'").fetchone()[0]
    if n == 1:
        break
    time.sleep(0.05)
for _ in range(3):
    conn.cancel_safe(timeout=10)
    t.join(0.5)
    if not t.is_alive():
        break
t.join(20)
print(result[0] if result else "still running")
"#;

/// A Python with psycopg 3's binary wheel, or `None` after saying why the test is
/// skipped (under CI=true a missing one fails: `.ci/run` installs it).
fn psycopg_python() -> Option<&'static str> {
    let ok = Command::new("python3")
        .args([
            "-c",
            "import psycopg; from psycopg import pq; assert pq.version() >= 170000",
        ])
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some("python3");
    }
    let why =
        "python3 with psycopg[binary] (libpq 17+) not found (pip install \"psycopg[binary]\")";
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{why}");
    }
    println!("skipped: {why}");
    None
}

#[test]
fn psycopg_cancel_safe_over_tls() {
    let Some(python) = psycopg_python() else {
        return;
    };
    let proxy = Proxy::start(pg(), ProxyOptions::default());
    let conninfo = proxy.conninfo(
        "app_user",
        "app_pass",
        "app",
        "sslmode=require connect_timeout=20 application_name=psycopg_cancel",
    );
    let out = Command::new(python)
        .args(["-c", PSYCOPG_CANCEL, &conninfo])
        .stdin(Stdio::null())
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.trim() == "cancelled",
        "psycopg's cancel_safe through the proxy: {stdout}\n{stderr}\nproxy log:\n{}",
        proxy.log()
    );
    let e = proxy.wait_event("the TLS cancel", |e| e["type"] == "cancel");
    assert_eq!(e["result"], "forwarded", "{e}");
    assert_eq!(e["tls"], true, "{e}");
    assert_eq!(e["target_user"], "app_user", "{e}");
}
