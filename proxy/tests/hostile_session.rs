//! Hostile clients during and after authentication, on raw sockets: malformed password and
//! SASL messages, invalid frames after login, cancel requests with unknown or wrong keys.
//! After every case the proxy must still run and serve a normal psql login.
//!
//! One cluster serves the whole file (a `static`: its guard process stops it when the test
//! process exits); each test starts its own proxy.

mod common;
use common::*;
use pgvigil::demo::cluster::Cluster;
use std::io::Write;
use std::net::TcpStream;
use std::sync::OnceLock;
use std::time::Duration;

fn pg() -> &'static Cluster {
    static PG: OnceLock<Cluster> = OnceLock::new();
    PG.get_or_init(cluster)
}

/// Sends a StartupMessage and returns the socket and the first reply.
fn start_auth(port: u16, user: &str, app: &str) -> (TcpStream, (u8, Vec<u8>)) {
    let mut s = raw_connect(port);
    s.write_all(&startup_packet(&[
        ("user", user),
        ("database", "postgres"),
        ("application_name", app),
    ]))
    .unwrap();
    let first = read_msg(&mut s).unwrap_or_else(|e| panic!("[{app}] no reply to the startup: {e}"));
    (s, first)
}

/// Sends `bytes` as the answer to an authentication request and checks the outcome: a
/// FATAL 08P01, the connection closed, the attempt audited as a protocol violation.
fn hostile_answer(proxy: &Proxy, mut s: TcpStream, app: &str, user: &str, bytes: &[u8]) {
    let _ = s.write_all(bytes);
    let (got, closed) = read_until_closed(&mut s, Duration::from_secs(5));
    assert!(closed.is_some(), "[{app}] connection left open");
    let (tag, body) =
        read_msg(&mut &got[..]).unwrap_or_else(|e| panic!("[{app}] no FATAL ({e}): {got:?}"));
    assert_eq!(tag, b'E', "[{app}] {got:?}");
    let f = error_fields(&body);
    assert_eq!(
        f.get(&'V').map(String::as_str),
        Some("FATAL"),
        "[{app}] {f:?}"
    );
    assert_eq!(
        f.get(&'C').map(String::as_str),
        Some("08P01"),
        "[{app}] {f:?}"
    );
    let e = proxy.wait_event(app, |e| {
        e["type"] == "auth_failure" && e["application_name"] == app
    });
    assert_eq!(e["sqlstate"], "08P01", "[{app}] {e}");
    assert_eq!(e["user"], user, "[{app}] {e}");
}

#[test]
fn hostile_authentication_messages() {
    // Password mode: the proxy's own AuthenticationCleartextPassword gets a broken answer.
    let mut proxy = Proxy::start(pg(), ProxyOptions::default());
    let mut huge = vec![b'p'];
    huge.extend_from_slice(&20_000u32.to_be_bytes());
    huge.extend_from_slice(&[b'x'; 100]);
    let cases: [(&str, Vec<u8>); 5] = [
        ("pw-len-2", vec![b'p', 0, 0, 0, 2]),
        ("pw-len-max", vec![b'p', 0xff, 0xff, 0xff, 0xff]),
        ("pw-len-20000", huge),
        ("pw-no-terminator", frontend_msg(b'p', b"pw_pass")),
        ("pw-query-instead", frontend_msg(b'Q', b"select 1\0")),
    ];
    for (app, bytes) in &cases {
        let (s, first) = start_auth(proxy.port, "pw_user", app);
        assert_eq!(first, (b'R', vec![0, 0, 0, 3]), "[{app}]");
        hostile_answer(&proxy, s, app, "pw_user", bytes);
    }
    assert_healthy(&mut proxy);

    // Passthrough: the server's SASL and md5 requests are relayed; the client's answers
    // are checked before anything reaches the server (CVE-2026-6664 was such a packet).
    let mut proxy = Proxy::start(
        pg(),
        ProxyOptions {
            auth_mode: "passthrough",
            ..ProxyOptions::default()
        },
    );
    let sasl = |declared: i32, data: &[u8]| {
        let mut body = b"SCRAM-SHA-256\0".to_vec();
        body.extend_from_slice(&declared.to_be_bytes());
        body.extend_from_slice(data);
        frontend_msg(b'p', &body)
    };
    let sasl_cases: [(&str, Vec<u8>); 5] = [
        ("sasl-len-mismatch", sasl(1000, b"n,,n=,r=abc")),
        ("sasl-len-negative", sasl(-2, b"n,,n=,r=abc")),
        ("sasl-len-max", sasl(i32::MAX, b"")),
        (
            "sasl-no-mechanism-end",
            frontend_msg(b'p', b"SCRAM-SHA-256"),
        ),
        ("sasl-short", frontend_msg(b'p', b"\0\0")),
    ];
    for (app, bytes) in &sasl_cases {
        let (s, (tag, body)) = start_auth(proxy.port, "scram_user", app);
        assert_eq!(
            (tag, body.get(..4)),
            (b'R', Some(&[0u8, 0, 0, 10][..])),
            "[{app}] expected AuthenticationSASL"
        );
        assert!(
            !body.windows(4).any(|w| w == b"PLUS"),
            "[{app}] SCRAM-SHA-256-PLUS offered through passthrough"
        );
        hostile_answer(&proxy, s, app, "scram_user", bytes);
    }
    let (s, first) = start_auth(proxy.port, "md5_user", "md5-len-max");
    assert_eq!(
        (first.0, first.1.get(..4)),
        (b'R', Some(&[0u8, 0, 0, 5][..])),
        "expected AuthenticationMD5Password"
    );
    hostile_answer(
        &proxy,
        s,
        "md5-len-max",
        "md5_user",
        &[b'p', 0xff, 0xff, 0xff, 0xff],
    );
    assert!(proxy.is_running(), "the proxy died:\n{}", proxy.log());
    let (ok, out, err) = psql(
        &proxy.conninfo("md5_user", "md5_pass", "postgres", "sslmode=disable"),
        "select current_user",
    );
    assert!(ok && out == "md5_user", "{err}");
}

#[test]
fn invalid_frame_after_login_closes_the_session() {
    let mut proxy = Proxy::start(
        pg(),
        ProxyOptions {
            tls_mode: "disable",
            ..ProxyOptions::default()
        },
    );
    let bad_frames: [(&str, [u8; 5]); 3] = [
        ("length 2", [b'Q', 0, 0, 0, 2]),
        ("length 0", [b'P', 0, 0, 0, 0]),
        ("length 0xFFFFFFFF", [b'd', 0xff, 0xff, 0xff, 0xff]),
    ];
    for (what, frame) in bad_frames {
        let mut s = raw_login(proxy.port, "trust_user", "x", "postgres");
        assert_eq!(
            raw_query(&mut s, "select current_user").unwrap(),
            ["trust_user"]
        );
        s.write_all(&frame).unwrap();
        let (got, closed) = read_until_closed(&mut s, Duration::from_secs(5));
        assert!(
            closed.is_some(),
            "[{what}] session left open after an invalid frame"
        );
        assert_nothing_or_fatal(what, &got);
        if !got.is_empty() {
            let (_, body) = read_msg(&mut &got[..]).unwrap();
            assert_eq!(
                error_fields(&body).get(&'C').map(String::as_str),
                Some("08P01"),
                "[{what}]"
            );
        }
        assert!(
            proxy.is_running(),
            "[{what}] the proxy died:\n{}",
            proxy.log()
        );
    }
    // Each session ended and was audited.
    wait_until("three session_end events", Duration::from_secs(10), || {
        proxy
            .audit_events()
            .iter()
            .filter(|e| e["type"] == "session_end")
            .count()
            >= 3
    });
    assert_healthy(&mut proxy);
}

#[test]
fn unknown_cancel_key_is_dropped_silently() {
    let mut proxy = Proxy::start(pg(), ProxyOptions::default());
    let before = proxy.metric("pgvigil_cancel_requests_total{result=\"unknown\"}");
    let mut s = raw_connect(proxy.port);
    let mut cancel = vec![0u8, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2e];
    cancel.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    cancel.extend_from_slice(&0x0bad_cafeu32.to_be_bytes());
    s.write_all(&cancel).unwrap();
    let (got, closed) = read_until_closed(&mut s, Duration::from_secs(5));
    assert!(closed.is_some(), "cancel connection left open");
    assert!(got.is_empty(), "a cancel request got a reply: {got:?}");
    metric_at_least(
        &proxy,
        "pgvigil_cancel_requests_total{result=\"unknown\"}",
        before + 1.0,
    );
    assert_eq!(
        proxy.metric("pgvigil_cancel_requests_total{result=\"forwarded\"}"),
        0.0
    );
    assert_healthy(&mut proxy);
}

/// Logs in as trust_user over plaintext and returns the session with the cancel key the
/// proxy handed out (BackendKeyData: the secret is the proxy's own, the server's stays in
/// the proxy).
fn login_with_key(port: u16, app: &str) -> (TcpStream, i32, [u8; 4]) {
    let mut s = raw_connect(port);
    s.write_all(&startup_packet(&[
        ("user", "trust_user"),
        ("database", "postgres"),
        ("application_name", app),
    ]))
    .unwrap();
    let mut key = None;
    loop {
        let (tag, body) = read_msg(&mut s).expect("login reply");
        match tag {
            b'R' if body == [0, 0, 0, 3] => s.write_all(&frontend_msg(b'p', b"x\0")).unwrap(),
            b'K' => {
                assert_eq!(body.len(), 8, "protocol 3.0 BackendKeyData");
                let pid = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                key = Some((pid, [body[4], body[5], body[6], body[7]]));
            }
            b'E' => panic!("login failed: {:?}", error_fields(&body)),
            b'Z' => break,
            _ => {}
        }
    }
    let (pid, secret) = key.expect("no BackendKeyData");
    (s, pid, secret)
}

/// Sends a CancelRequest on its own connection; the proxy must close it without a reply.
fn send_cancel(port: u16, pid: i32, secret: [u8; 4]) {
    let mut s = raw_connect(port);
    let mut cancel = vec![0u8, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2e];
    cancel.extend_from_slice(&pid.to_be_bytes());
    cancel.extend_from_slice(&secret);
    s.write_all(&cancel).unwrap();
    let (got, closed) = read_until_closed(&mut s, Duration::from_secs(15));
    assert!(closed.is_some(), "cancel connection left open");
    assert!(got.is_empty(), "a cancel request got a reply: {got:?}");
}

fn wait_active(app: &str) {
    wait_until(
        &format!("{app}'s query to run"),
        Duration::from_secs(10),
        || {
            pg().psql(
            "postgres",
            "postgres",
            &format!("select count(*) from pg_stat_activity where application_name = '{app}' and state = 'active'"),
        )
        .is_ok_and(|n| n.trim() == "1")
        },
    );
}

#[test]
fn cancel_keys_are_mapped_and_checked() {
    let mut proxy = Proxy::start(pg(), ProxyOptions::default());
    let (mut s, pid, secret) = login_with_key(proxy.port, "cancel-keys");
    assert!(pid > 0, "BackendKeyData pid {pid}");

    // A right pid with a wrong secret, and a wrong pid: dropped, the query runs on.
    s.write_all(&frontend_msg(b'Q', b"select pg_sleep(2)\0"))
        .unwrap();
    wait_active("cancel-keys");
    let wrong = [secret[0], secret[1], secret[2], secret[3] ^ 1];
    send_cancel(proxy.port, pid, wrong);
    send_cancel(proxy.port, pid.wrapping_add(1), secret);
    metric_at_least(
        &proxy,
        "pgvigil_cancel_requests_total{result=\"unknown\"}",
        2.0,
    );
    let mut error = None;
    loop {
        let (tag, body) = read_msg(&mut s).expect("query reply");
        match tag {
            b'E' => error = Some(error_fields(&body)),
            b'Z' => break,
            _ => {}
        }
    }
    assert!(
        error.is_none(),
        "a wrong key cancelled the query: {error:?}"
    );

    // The right key cancels.
    s.write_all(&frontend_msg(b'Q', b"select pg_sleep(60)\0"))
        .unwrap();
    wait_active("cancel-keys");
    let started = std::time::Instant::now();
    send_cancel(proxy.port, pid, secret);
    let mut error = None;
    loop {
        let (tag, body) = read_msg(&mut s).expect("query reply");
        match tag {
            b'E' => error = Some(error_fields(&body)),
            b'Z' => break,
            _ => {}
        }
    }
    let error = error.expect("the right key did not cancel the query");
    assert_eq!(
        error.get(&'C').map(String::as_str),
        Some("57014"),
        "{error:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "cancel took {:?}",
        started.elapsed()
    );
    // The proxy counts the cancel after the server has taken it, which can be after the
    // client already saw the error: wait for the count rather than read it once.
    metric_at_least(
        &proxy,
        "pgvigil_cancel_requests_total{result=\"forwarded\"}",
        1.0,
    );
    s.write_all(&frontend_msg(b'X', b"")).unwrap();
    drop(s);
    proxy.wait_event("session_end", |e| {
        e["type"] == "session_end" && e["application_name"] == "cancel-keys"
    });
    // The key died with its session.
    send_cancel(proxy.port, pid, secret);
    metric_at_least(
        &proxy,
        "pgvigil_cancel_requests_total{result=\"unknown\"}",
        3.0,
    );
    assert_eq!(
        proxy.metric("pgvigil_cancel_requests_total{result=\"forwarded\"}"),
        1.0
    );
    assert_healthy(&mut proxy);
}

/// node-postgres' `client.end()`: Terminate, then keep reading until the socket closes. The
/// server's close after a Terminate is the expected end: never a FATAL 08006 (node raises
/// it as an 'error' event, which crashes an app without a listener). The race was about 1
/// in 10, so it is run many times, half of them with a query in flight on another session.
#[test]
fn terminate_then_read_sees_a_clean_close() {
    let proxy = Proxy::start(pg(), ProxyOptions::default());
    let mut busy = raw_login(proxy.port, "trust_user", "x", "postgres");
    for i in 0..200 {
        let mut s = raw_login(proxy.port, "trust_user", "x", "postgres");
        if i % 2 == 0 {
            assert_eq!(raw_query(&mut s, "select 1").unwrap(), ["1"]);
        }
        s.write_all(&frontend_msg(b'X', b"")).unwrap();
        let (got, closed) = read_until_closed(&mut s, Duration::from_secs(5));
        assert!(closed.is_some(), "[{i}] not closed after Terminate");
        assert!(got.is_empty(), "[{i}] bytes after Terminate: {got:?}");
        if i % 50 == 0 {
            assert_eq!(raw_query(&mut busy, "select 2").unwrap(), ["2"]);
        }
    }
}
