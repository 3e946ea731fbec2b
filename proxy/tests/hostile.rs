//! Hostile and broken clients before authentication, on raw sockets: malformed startup
//! packets, plaintext injected after SSLRequest (CVE-2021-23214), stalled startups, a
//! connection flood beyond `max_client_conn`, GSSENCRequest, direct TLS with and without
//! ALPN. After every case the proxy must still run and serve a normal psql login.
//! (`hostile_session.rs` covers authentication messages, frames after login and cancels.)
//!
//! One cluster serves the whole file (a `static`: its guard process stops it when the test
//! process exits); each test starts its own proxy.

mod common;
use common::*;
use pgvigil::demo::cluster::Cluster;
use std::io::Write;
use std::net::TcpStream;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

fn pg() -> &'static Cluster {
    static PG: OnceLock<Cluster> = OnceLock::new();
    PG.get_or_init(cluster)
}

/// Deterministic garbage (xorshift), so a failure can be replayed.
fn garbage(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

#[test]
fn malformed_startup_packets_are_refused() {
    let mut proxy = Proxy::start(pg(), ProxyOptions::default());
    let mut len_10001 = 10_001u32.to_be_bytes().to_vec();
    len_10001.extend_from_slice(&(3u32 << 16).to_be_bytes());
    len_10001.extend_from_slice(b"user\0x\0");
    let big_db = "d".repeat(64 * 1024);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("length 0", vec![0, 0, 0, 0]),
        ("length 3", vec![0, 0, 0, 3]),
        (
            "length 0xFFFFFFFF",
            vec![0xff, 0xff, 0xff, 0xff, 0, 3, 0, 0],
        ),
        ("length 10001", len_10001),
        (
            "64 KB database name",
            startup_packet(&[("user", "trust_user"), ("database", &big_db)]),
        ),
        (
            "HTTP request",
            b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
        ),
        ("random bytes", garbage(4096, 0x9e37_79b9_7f4a_7c15)),
        (
            "TLS record of garbage",
            [&[0x16u8, 0x03, 0x01, 0x00, 0x20][..], &garbage(32, 7)].concat(),
        ),
        ("startup without terminator", {
            let mut p = startup_packet(&[("user", "trust_user")]);
            p.truncate(p.len() - 2);
            let n = p.len() as u32;
            p[..4].copy_from_slice(&n.to_be_bytes());
            p
        }),
    ];
    let before = proxy.metric("pgvigil_connections_total{result=\"protocol_error\"}");
    for (what, bytes) in &cases {
        let mut s = raw_connect(proxy.port);
        // The proxy may close before reading everything (then the write fails): fine.
        let _ = s.write_all(bytes);
        // startup_timeout is 10 s: a close within 5 s is the proxy refusing the input.
        let (got, closed) = read_until_closed(&mut s, Duration::from_secs(5));
        assert!(closed.is_some(), "[{what}] connection still open after 5 s");
        assert_nothing_or_fatal(what, &got);
        assert!(
            proxy.is_running(),
            "[{what}] the proxy died:\n{}",
            proxy.log()
        );
    }
    metric_at_least(
        &proxy,
        "pgvigil_connections_total{result=\"protocol_error\"}",
        before + cases.len() as f64,
    );
    assert!(
        proxy
            .audit_events()
            .iter()
            .all(|e| e["type"] != "session_start"),
        "a hostile input started a session"
    );
    assert_healthy(&mut proxy);
}

#[test]
fn refused_startup_packets_are_explained() {
    // PostgreSQL answers these with a FATAL that says what is wrong (it only logs length
    // errors); so must the proxy, over plaintext and over TLS.
    let mut proxy = Proxy::start(pg(), ProxyOptions::default());
    let mut no_terminator = startup_packet(&[("user", "trust_user")]);
    no_terminator.truncate(no_terminator.len() - 2);
    let n = no_terminator.len() as u32;
    no_terminator[..4].copy_from_slice(&n.to_be_bytes());
    let mut v4 = startup_packet(&[("user", "trust_user"), ("database", "postgres")]);
    v4[4..8].copy_from_slice(&(4u32 << 16).to_be_bytes());
    let cases: [(&str, Vec<u8>, &str, &str); 4] = [
        ("protocol 4.0", v4, "0A000", "unsupported frontend protocol"),
        (
            "no user",
            startup_packet(&[("database", "postgres")]),
            "28000",
            "no PostgreSQL user name",
        ),
        (
            "empty user",
            startup_packet(&[("user", ""), ("database", "postgres")]),
            "28000",
            "no PostgreSQL user name",
        ),
        (
            "no terminator",
            no_terminator,
            "08P01",
            "invalid startup packet layout",
        ),
    ];
    for (what, packet, code, text) in &cases {
        for ssl in [false, true] {
            let mut s = raw_connect(proxy.port);
            let got = if ssl {
                s.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]).unwrap();
                let mut answer = [0u8; 1];
                std::io::Read::read_exact(&mut s, &mut answer).unwrap();
                assert_eq!(answer[0], b'S');
                let mut tls = tls_client(&proxy, s);
                tls.write_all(packet).unwrap();
                let mut got = Vec::new();
                let _ = std::io::Read::read_to_end(&mut tls, &mut got);
                got
            } else {
                s.write_all(packet).unwrap();
                let (got, closed) = read_until_closed(&mut s, Duration::from_secs(5));
                assert!(closed.is_some(), "[{what}] left open");
                got
            };
            let (tag, body) = read_msg(&mut &got[..]).unwrap_or_else(|e| {
                panic!("[{what}, tls {ssl}] no FATAL before the close ({e}): {got:?}")
            });
            assert_eq!(tag, b'E', "[{what}, tls {ssl}] {got:?}");
            let f = error_fields(&body);
            assert_eq!(
                f.get(&'V').map(String::as_str),
                Some("FATAL"),
                "[{what}] {f:?}"
            );
            assert_eq!(
                f.get(&'C').map(String::as_str),
                Some(*code),
                "[{what}] {f:?}"
            );
            assert!(f[&'M'].contains(text), "[{what}] {f:?}");
        }
    }
    assert_healthy(&mut proxy);
}

/// A blocking rustls client over an already negotiated socket (SSLRequest answered 'S'),
/// trusting the proxy's CA.
fn tls_client(
    proxy: &Proxy,
    tcp: TcpStream,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let roots = pgvigil::tls::load_roots(proxy.ca_file()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(pgvigil::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    rustls::StreamOwned::new(conn, tcp)
}

#[test]
fn plaintext_after_ssl_request_is_never_processed() {
    // CVE-2021-23214: bytes sent in the clear right after SSLRequest must not be read as
    // if they had arrived over TLS.
    let mut proxy = Proxy::start(pg(), ProxyOptions::default());
    let ssl_request = [0u8, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
    let injected: Vec<(&str, Vec<u8>)> = vec![
        ("Query", frontend_msg(b'Q', b"select 'injected'\0")),
        (
            "StartupMessage",
            startup_packet(&[("user", "trust_user"), ("database", "postgres")]),
        ),
    ];
    for (what, tail) in injected {
        let mut s = raw_connect(proxy.port);
        s.write_all(&[&ssl_request[..], &tail].concat()).unwrap();
        let (got, closed) = read_until_closed(&mut s, Duration::from_secs(5));
        assert!(closed.is_some(), "[{what}] connection left open");
        // No 'S' (TLS would then start on a tainted stream) and no query result.
        assert_nothing_or_fatal(what, &got);
    }
    assert!(proxy
        .audit_events()
        .iter()
        .all(|e| e["type"] != "session_start"));
    assert_healthy(&mut proxy);
}

#[test]
fn stalled_startup_is_closed_after_startup_timeout() {
    let mut proxy = Proxy::start(
        pg(),
        ProxyOptions {
            startup_timeout: "1s",
            ..ProxyOptions::default()
        },
    );
    // Half a startup packet, then silence.
    let packet = startup_packet(&[("user", "trust_user"), ("database", "postgres")]);
    let mut s = raw_connect(proxy.port);
    s.write_all(&packet[..packet.len() / 2]).unwrap();
    let (got, closed) = read_until_closed(&mut s, Duration::from_secs(5));
    let took =
        closed.unwrap_or_else(|| panic!("half a startup packet kept the connection open for 5 s"));
    assert!(
        took >= Duration::from_millis(500),
        "closed after {took:?}, before startup_timeout"
    );
    assert_nothing_or_fatal("half startup", &got);

    // A whole StartupMessage, then no answer to the password request: also timed out, and
    // audited as a failed login for that user.
    let mut s = raw_connect(proxy.port);
    s.write_all(&startup_packet(&[
        ("user", "pw_user"),
        ("database", "postgres"),
        ("application_name", "stall"),
    ]))
    .unwrap();
    let (got, closed) = read_until_closed(&mut s, Duration::from_secs(5));
    assert!(
        closed.is_some(),
        "unanswered password request kept the connection open for 5 s"
    );
    assert_eq!(
        got.first(),
        Some(&b'R'),
        "expected a password request first: {got:?}"
    );
    let e = proxy.wait_event("timed-out login", |e| {
        e["type"] == "auth_failure" && e["application_name"] == "stall"
    });
    assert!(
        e["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("timed out"),
        "{e}"
    );
    assert_eq!(e["user"], "pw_user");
    metric_at_least(&proxy, "pgvigil_connections_total{result=\"timeout\"}", 2.0);
    assert_healthy(&mut proxy);
}

#[test]
fn connections_beyond_max_client_conn_are_refused() {
    const MAX: usize = 5;
    const EXTRA: usize = 2000;
    let mut proxy = Proxy::start(
        pg(),
        ProxyOptions {
            tls_mode: "disable",
            max_client_conn: MAX,
            startup_timeout: "60s",
            ..ProxyOptions::default()
        },
    );
    // Fill every session place with authenticated sessions.
    let mut sessions: Vec<TcpStream> = (0..MAX)
        .map(|_| raw_login(proxy.port, "trust_user", "x", "postgres"))
        .collect();
    wait_until("all places taken", Duration::from_secs(10), || {
        proxy.metric("pgvigil_client_connections") == MAX as f64
    });
    let idle: Vec<TcpStream> = Vec::new();

    // The flood, from four threads at once; every socket stays open until all are made.
    let refused = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    std::thread::scope(|scope| {
        for _ in 0..4 {
            let refused = refused.clone();
            let port = proxy.port;
            scope.spawn(move || {
                // Each asks for a session; refused either after its startup packet (no
                // session place) or at once (its address's pre-login budget is full).
                let hello = startup_packet(&[("user", "trust_user"), ("database", "postgres")]);
                let socks: Vec<TcpStream> = (0..EXTRA / 4)
                    .map(|_| {
                        let mut s = raw_connect(port);
                        let _ = s.write_all(&hello);
                        s
                    })
                    .collect();
                for mut s in socks {
                    let (got, closed) = read_until_closed(&mut s, Duration::from_secs(10));
                    assert!(
                        closed.is_some(),
                        "a connection beyond max_client_conn was kept open"
                    );
                    if got.is_empty() {
                        continue;
                    }
                    let (tag, body) = read_msg(&mut &got[..]).expect("a complete message");
                    assert_eq!(tag, b'E', "{got:?}");
                    assert_eq!(
                        error_fields(&body).get(&'C').map(String::as_str),
                        Some("53300")
                    );
                    refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
    });
    // The kernel may drop the write of a socket the proxy closes at once, but not here.
    assert!(
        refused.load(std::sync::atomic::Ordering::Relaxed) > EXTRA / 2,
        "few 53300 replies"
    );
    wait_until("every refusal counted", Duration::from_secs(10), || {
        ["too_many", "addr_limit", "startup_full"]
            .iter()
            .map(|r| proxy.metric(&format!("pgvigil_connections_total{{result=\"{r}\"}}")))
            .sum::<f64>()
            >= EXTRA as f64
    });
    assert!(
        proxy.metric("pgvigil_connections_total{result=\"too_many\"}") > 0.0,
        "no refusal for max_client_conn itself"
    );
    assert!(
        proxy.is_running(),
        "the proxy died in the flood:\n{}",
        proxy.log()
    );
    // The sessions that held slots were not disturbed.
    for s in &mut sessions {
        assert_eq!(raw_query(s, "select 42").unwrap(), ["42"]);
    }
    drop(sessions);
    drop(idle);
    wait_until("slots released", Duration::from_secs(10), || {
        proxy.metric("pgvigil_client_connections") == 0.0
    });
    assert_healthy(&mut proxy);
}

#[test]
fn gssenc_request_is_declined_then_tls_works() {
    let mut proxy = Proxy::start(pg(), ProxyOptions::default());
    let gssenc = [0u8, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30];
    let mut s = raw_connect(proxy.port);
    s.write_all(&gssenc).unwrap();
    let mut answer = [0u8; 1];
    std::io::Read::read_exact(&mut s, &mut answer).unwrap();
    assert_eq!(answer[0], b'N', "GSSENCRequest must be declined");
    s.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]).unwrap();
    std::io::Read::read_exact(&mut s, &mut answer).unwrap();
    assert_eq!(answer[0], b'S', "SSLRequest after a declined GSSENCRequest");
    let mut tls = tls_client(&proxy, s);
    tls.write_all(&startup_packet(&[
        ("user", "trust_user"),
        ("database", "postgres"),
    ]))
    .unwrap();
    let (tag, body) = read_msg(&mut tls).expect("reply over TLS");
    // Password mode asks before it opens a server connection, even for trust_user.
    assert_eq!((tag, body), (b'R', vec![0, 0, 0, 3]));
    tls.write_all(&frontend_msg(b'p', b"x\0")).unwrap();
    let (tag, body) = read_msg(&mut tls).expect("reply over TLS");
    assert_eq!((tag, body), (b'R', vec![0, 0, 0, 0]));

    // A second GSSENCRequest is a protocol violation: closed.
    let mut s = raw_connect(proxy.port);
    s.write_all(&[gssenc, gssenc].concat()).unwrap();
    let (got, closed) = read_until_closed(&mut s, Duration::from_secs(5));
    assert!(
        closed.is_some(),
        "two GSSENCRequests left the connection open"
    );
    assert_eq!(got.first(), Some(&b'N'), "{got:?}");
    assert_healthy(&mut proxy);
}

/// Opens a direct TLS connection (no SSLRequest) with the given ALPN protocols and logs in
/// as trust_user (answering the password request). Returns the messages received up to
/// ReadyForQuery, or up to the point where the proxy closed the connection.
async fn direct_tls(proxy: &Proxy, alpn: &[&[u8]]) -> Result<Vec<(u8, Vec<u8>)>, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let roots = pgvigil::tls::load_roots(proxy.ca_file()).map_err(|e| e.to_string())?;
    let mut config = rustls::ClientConfig::builder_with_provider(pgvigil::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", proxy.port))
        .await
        .map_err(|e| e.to_string())?;
    let name = rustls_pki_types::ServerName::try_from("localhost").map_err(|e| e.to_string())?;
    let io = async {
        let mut tls = connector.connect(name, tcp).await?;
        tls.write_all(&startup_packet(&[
            ("user", "trust_user"),
            ("database", "postgres"),
            ("application_name", "direct"),
        ]))
        .await?;
        tls.flush().await?;
        let mut seen = Vec::new();
        loop {
            let mut head = [0u8; 5];
            // A close (EOF, or a TLS error for a close without close_notify) ends the list.
            if tls.read_exact(&mut head).await.is_err() {
                return Ok(seen);
            }
            let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
            if !(4..=1 << 20).contains(&len) {
                return Err(std::io::Error::other(format!("bad length {len}")));
            }
            let mut body = vec![0u8; len - 4];
            tls.read_exact(&mut body).await?;
            if head[0] == b'R' && body == [0, 0, 0, 3] {
                tls.write_all(&frontend_msg(b'p', b"x\0")).await?;
                tls.flush().await?;
            }
            let done = head[0] == b'Z';
            seen.push((head[0], body));
            if done {
                tls.write_all(&frontend_msg(b'X', b"")).await?;
                tls.flush().await?;
                return Ok(seen);
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), io)
        .await
        .map_err(|_| "direct TLS exchange timed out".to_string())?
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_tls_needs_the_postgresql_alpn() {
    let mut proxy = tokio::task::block_in_place(|| Proxy::start(pg(), ProxyOptions::default()));
    let with_alpn = direct_tls(&proxy, &[b"postgresql"])
        .await
        .expect("direct TLS with ALPN");
    let tags: Vec<char> = with_alpn.iter().map(|(t, _)| *t as char).collect();
    // In password mode the proxy asks every client for a password before it opens a
    // server connection (trust_user's is never checked), then AuthenticationOk, the
    // server's startup messages and ReadyForQuery.
    assert_eq!(
        with_alpn.first(),
        Some(&(b'R', vec![0, 0, 0, 3])),
        "{tags:?}\n{}",
        proxy.log()
    );
    assert!(with_alpn.contains(&(b'R', vec![0, 0, 0, 0])), "{tags:?}");
    assert_eq!(tags.last(), Some(&'Z'), "{tags:?}");
    tokio::task::block_in_place(|| {
        let e = proxy.wait_event("direct TLS session", |e| {
            e["type"] == "session_start" && e["application_name"] == "direct"
        });
        assert_eq!(e["tls"], true, "{e}");
    });
    // No ALPN: not PostgreSQL (PostgreSQL 17 refuses it too); closed without an answer.
    if let Ok(got) = direct_tls(&proxy, &[]).await {
        assert!(got.is_empty(), "direct TLS without ALPN answered: {got:?}");
    }
    tokio::task::block_in_place(|| assert_healthy(&mut proxy));

    // With TLS disabled, a TLS ClientHello is closed.
    let mut plain = tokio::task::block_in_place(|| {
        Proxy::start(
            pg(),
            ProxyOptions {
                tls_mode: "disable",
                ..ProxyOptions::default()
            },
        )
    });
    if let Ok(got) = direct_tls(&plain, &[b"postgresql"]).await {
        assert!(
            got.is_empty(),
            "direct TLS answered with TLS disabled: {got:?}"
        );
    }
    tokio::task::block_in_place(|| assert_healthy(&mut plain));
}
