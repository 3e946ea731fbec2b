//! The shortest path through the proxy: psql over TLS, a good and a bad password.

mod common;
use common::*;

#[test]
fn psql_through_proxy_and_failed_login_is_audited() {
    let pg = cluster();
    let proxy = Proxy::start(&pg, ProxyOptions::default());
    let (ok, out, err) = psql(
        &proxy.conninfo("scram_user", "scram_pass", "postgres", "sslmode=require"),
        "select current_user",
    );
    assert!(ok, "{err}\n{}", proxy.log());
    assert_eq!(out, "scram_user");
    let (ok, _, err) = psql(
        &proxy.conninfo("scram_user", "nope", "postgres", "sslmode=require"),
        "select 1",
    );
    assert!(!ok);
    assert!(err.contains("password authentication failed"), "{err}");
    let e = proxy.wait_event("auth_failure", |e| e["type"] == "auth_failure");
    assert_eq!(e["sqlstate"], "28P01");
    assert_eq!(e["client_addr"], "127.0.0.1");
    assert_eq!(e["user"], "scram_user");
    proxy.wait_event("session_end", |e| {
        e["type"] == "session_end" && e["bytes_in"].as_u64() > Some(0)
    });
}

#[test]
fn password_mode_asks_every_client_for_a_password_before_the_server_sees_it() {
    // The proxy opens no server connection before the client has sent a password (a bare
    // startup packet must cost the server nothing), so even a user the server trusts is
    // asked for one; its value is never checked.
    let pg = cluster();
    let proxy = Proxy::start(&pg, ProxyOptions::default());
    let conninfo = format!(
        "host=127.0.0.1 port={} user=trust_user dbname=postgres sslmode=require",
        proxy.port
    );
    let (ok, _, err) = psql(&conninfo, "select current_user");
    assert!(!ok, "logged in without a password");
    assert!(err.contains("no password supplied"), "{err}");
    let (ok, out, err) = psql(
        &format!("{conninfo} password=anything"),
        "select current_user",
    );
    assert!(ok, "{err}\n{}", proxy.log());
    assert_eq!(out, "trust_user");
    let e = proxy.wait_event("session_start", |e| e["type"] == "session_start");
    assert_eq!(e["auth_method"], "trust");
}
