//! A hostile or broken upstream: the attacks that hit poolers from the server's side, played
//! by a raw socket standing where PostgreSQL should be. Bytes injected after the server's
//! `S` (CVE-2021-23222), a megabyte SCRAM nonce (CVE-2026-6665), an ErrorResponse without a
//! SQLSTATE (CVE-2026-6666), an absurd SCRAM iteration count, a 4 GiB frame length after
//! login and in reply to pgvigil's own catalog check. Each time the client gets a clear
//! error, and the proxy keeps running.

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::Duration;

/// A server that runs `script` on the first connection that sends something. Connections
/// closed without a byte are pgvigil's reachability probe (`pgvigil_upstream_up`, which
/// PostgreSQL does not log either) and are skipped.
fn hostile_server(script: impl FnOnce(TcpStream) + Send + 'static) -> (u16, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let handle = std::thread::spawn(move || {
        while let Ok((s, _)) = listener.accept() {
            let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
            let mut first = [0u8; 1];
            if matches!(s.peek(&mut first), Ok(0) | Err(_)) {
                continue;
            }
            script(s);
            return;
        }
    });
    (port, handle)
}

/// Reads one untagged startup-phase packet (SSLRequest or StartupMessage).
fn read_startup(s: &mut TcpStream) -> Vec<u8> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).expect("startup length");
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize - 4];
    s.read_exact(&mut body).expect("startup body");
    body
}

fn backend_msg(tag: u8, body: &[u8]) -> Vec<u8> {
    frontend_msg(tag, body)
}

fn auth(code: i32, data: &[u8]) -> Vec<u8> {
    backend_msg(b'R', &[&code.to_be_bytes()[..], data].concat())
}

fn proxy_for(port: u16, sslmode: &'static str) -> Proxy {
    Proxy::start_upstream(
        port,
        None,
        ProxyOptions {
            sslmode,
            tls_mode: "disable",
            ..ProxyOptions::default()
        },
    )
}

/// psql through the proxy; returns its stderr (it must fail).
fn failing_psql(proxy: &Proxy) -> String {
    let (ok, _, err) = psql(
        &proxy.conninfo(
            "alice",
            "secret",
            "app",
            "sslmode=disable connect_timeout=20",
        ),
        "select 1",
    );
    assert!(!ok, "a login through a hostile server succeeded");
    err
}

fn assert_survived(proxy: &mut Proxy) {
    assert!(proxy.is_running(), "the proxy died:\n{}", proxy.log());
    // Still accepting and answering: the metrics endpoint and a new TCP connection.
    assert!(proxy.metrics().contains("pgvigil_connections_total"));
    raw_connect(proxy.port);
}

#[test]
fn bytes_injected_after_the_servers_ssl_response_are_refused() {
    let (port, server) = hostile_server(|mut s| {
        read_startup(&mut s);
        // 'S' and, in the same write, a plaintext AuthenticationOk that a vulnerable
        // client would read as if it had arrived over TLS.
        let mut reply = b"S".to_vec();
        reply.extend(auth(0, &[]));
        let _ = s.write_all(&reply);
        let _ = s.read(&mut [0u8; 64]);
    });
    let mut proxy = proxy_for(port, "require");
    let err = failing_psql(&proxy);
    assert!(
        err.contains("sent data after its SSL response"),
        "{err}\n{}",
        proxy.log()
    );
    server.join().expect("server thread");
    assert_survived(&mut proxy);
}

/// Answers the StartupMessage with AuthenticationSASL, reads the SASLInitialResponse, then
/// sends `continue_data` as the SASLContinue. Returns whatever the proxy sent next (if any).
fn scram_server(continue_data: Vec<u8>) -> (u16, JoinHandle<()>) {
    hostile_server(move |mut s| {
        read_startup(&mut s);
        let _ = s.write_all(&auth(10, b"SCRAM-SHA-256\0\0"));
        let Ok((tag, _)) = read_msg(&mut s) else {
            return;
        };
        assert_eq!(tag, b'p', "SASLInitialResponse expected");
        let _ = s.write_all(&auth(11, &continue_data));
        let _ = s.read(&mut [0u8; 256]);
    })
}

#[test]
fn a_megabyte_scram_nonce_is_refused() {
    let nonce = "A".repeat(1024 * 1024);
    let (port, server) = scram_server(format!("r={nonce},s=QUJD,i=4096").into_bytes());
    let mut proxy = proxy_for(port, "disable");
    let err = failing_psql(&proxy);
    assert!(err.contains("exceeds the limit"), "{err}\n{}", proxy.log());
    server.join().expect("server thread");
    assert_survived(&mut proxy);
}

#[test]
fn an_absurd_scram_iteration_count_is_refused() {
    // The client-first nonce is unknown here; the iteration check runs before the nonce is
    // compared, which is the point: no key derivation with 2^31 rounds is ever started.
    let (port, server) = scram_server(b"r=x,s=QUJD,i=2147483647".to_vec());
    let mut proxy = proxy_for(port, "disable");
    let err = failing_psql(&proxy);
    assert!(err.contains("iteration count"), "{err}\n{}", proxy.log());
    server.join().expect("server thread");
    assert_survived(&mut proxy);
}

#[test]
fn an_error_response_without_sqlstate_is_relayed_and_audited() {
    let (port, server) = hostile_server(|mut s| {
        read_startup(&mut s);
        let _ = s.write_all(&backend_msg(b'E', b"SFATAL\0Mgo away\0\0"));
    });
    let mut proxy = proxy_for(port, "disable");
    let err = failing_psql(&proxy);
    assert!(err.contains("go away"), "{err}");
    let e = proxy.wait_event("auth_failure", |e| e["type"] == "auth_failure");
    assert!(e["sqlstate"].is_null(), "{e}");
    assert_eq!(e["reason"], "go away");
    server.join().expect("server thread");
    assert_survived(&mut proxy);
}

#[test]
fn a_four_gigabyte_frame_after_login_closes_only_that_session() {
    let (port, server) = hostile_server(|mut s| {
        read_startup(&mut s);
        // Trust, ReadyForQuery, then wait for the query and answer with a length that
        // would be a 4 GiB allocation in a naive proxy.
        let mut hello = auth(0, &[]);
        hello.extend(backend_msg(b'K', &[0, 0, 0, 42, 0, 0, 0, 7]));
        hello.extend(backend_msg(b'Z', b"I"));
        let _ = s.write_all(&hello);
        answer_catalog_check(&mut s);
        let Ok((tag, _)) = read_msg(&mut s) else {
            return;
        };
        assert_eq!(tag, b'Q');
        let _ = s.write_all(&[b'T', 0xff, 0xff, 0xff, 0xff]);
        let _ = s.read(&mut [0u8; 64]);
    });
    let mut proxy = proxy_for(port, "disable");
    let err = failing_psql(&proxy);
    assert!(
        err.contains("server closed the connection unexpectedly"),
        "{err}\n{}",
        proxy.log()
    );
    let end = proxy.wait_event("session_end", |e| e["type"] == "session_end");
    assert_eq!(end["user"], "alice");
    server.join().expect("server thread");
    assert_survived(&mut proxy);
}

/// Reads pgvigil's own catalog query (sent right after the login's ReadyForQuery) and
/// answers it with no rows.
fn answer_catalog_check(s: &mut TcpStream) {
    let (tag, body) = read_msg(s).expect("the catalog check");
    assert_eq!(tag, b'Q');
    assert!(
        String::from_utf8_lossy(&body).contains("pgvigil: noise filter catalog check"),
        "not the catalog check: {}",
        String::from_utf8_lossy(&body)
    );
    let mut reply = backend_msg(b'C', b"SELECT 0\0");
    reply.extend(backend_msg(b'Z', b"I"));
    let _ = s.write_all(&reply);
}

#[test]
fn a_four_gigabyte_frame_in_reply_to_the_catalog_check_refuses_the_login() {
    let (port, server) = hostile_server(|mut s| {
        read_startup(&mut s);
        let mut hello = auth(0, &[]);
        hello.extend(backend_msg(b'K', &[0, 0, 0, 42, 0, 0, 0, 7]));
        hello.extend(backend_msg(b'Z', b"I"));
        let _ = s.write_all(&hello);
        let Ok((tag, _)) = read_msg(&mut s) else {
            return;
        };
        assert_eq!(tag, b'Q');
        let _ = s.write_all(&[b'D', 0xff, 0xff, 0xff, 0xff]);
        let _ = s.read(&mut [0u8; 64]);
    });
    let mut proxy = proxy_for(port, "disable");
    let err = failing_psql(&proxy);
    assert!(
        err.contains("pgvigil could not open the server connection"),
        "{err}\n{}",
        proxy.log()
    );
    server.join().expect("server thread");
    assert_survived(&mut proxy);
}
