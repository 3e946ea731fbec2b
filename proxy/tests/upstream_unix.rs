//! An upstream reached through its Unix-socket directory (`host = "/path/to/dir"`, as
//! libpq takes it): logins, statements and cancel requests go through the socket file
//! `.s.PGSQL.<port>`, and an sslmode that insists on TLS is refused by the config check.

mod common;

use common::{cluster, psql, Proxy, ProxyOptions};
use std::path::Path;
use std::time::{Duration, Instant};

#[test]
fn sessions_and_cancels_go_through_the_socket() {
    let pg = cluster();
    let dir = pg.socket_dir().display().to_string();
    // The test cluster trusts every local (socket) login and asks TCP logins for SCRAM:
    // `trust` as the audited method shows which way the session went.
    let proxy = Proxy::start(
        &pg,
        ProxyOptions {
            extra: format!(
                "[databases.app]\nhost = \"{dir}\"\nport = {}\nsslmode = \"prefer\"\n",
                pg.port()
            ),
            ..ProxyOptions::default()
        },
    );
    let conn = proxy.conninfo("app_user", "anything", "app", "sslmode=disable");
    let (ok, out, err) = psql(
        &conn,
        "create temp table u as select 42 as x; select x from u",
    );
    assert!(ok, "{err}");
    assert!(out.ends_with("42"), "{out}");
    let start = proxy.wait_event("session_start", |e| {
        e["type"] == "session_start" && e["database"] == "app"
    });
    assert_eq!(start["auth_method"], "trust", "{start}");
    proxy.wait_event("the statement", |e| {
        e["type"] == "statement" && e["statement"] == "create temp table u as select 42 as x"
    });
    // The same user over TCP (another database, default route) must give the password.
    let (ok, _, err) = psql(
        &proxy.conninfo("app_user", "anything", "postgres", "sslmode=disable"),
        "select 1",
    );
    assert!(
        !ok && err.contains("password authentication failed"),
        "{err}"
    );

    // A cancel request reaches the server through the socket too.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let conninfo = format!(
            "host=127.0.0.1 port={} user=app_user password=x dbname=app",
            proxy.port
        );
        let (client, connection) = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        let token = client.cancel_token();
        let started = Instant::now();
        let sleeper = tokio::spawn(async move { client.simple_query("select pg_sleep(30)").await });
        tokio::time::sleep(Duration::from_millis(500)).await;
        token
            .cancel_query(tokio_postgres::NoTls)
            .await
            .expect("cancel");
        let err = sleeper.await.unwrap().expect_err("the sleep is cancelled");
        assert_eq!(
            err.code(),
            Some(&tokio_postgres::error::SqlState::QUERY_CANCELED),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_secs(15));
    });
    let cancel = proxy.wait_event("cancel", |e| e["type"] == "cancel");
    assert_eq!(cancel["result"], "forwarded", "{cancel}");
}

#[test]
fn tls_over_a_socket_is_refused_by_the_check() {
    for mode in ["require", "verify-ca", "verify-full"] {
        let text = format!(
            "[listen.tls]\nmode = \"disable\"\n[upstream]\nhost = \"/var/run/postgresql\"\nport = 5432\nsslmode = \"{mode}\"\nca_file = \"/nonexistent/ca.crt\"\n"
        );
        let err = pgvigil::snapshot::load_str(&text, Path::new("/tmp/pgvigil.toml"))
            .expect_err("TLS cannot run over a Unix socket")
            .to_string();
        assert!(err.contains("TLS does not run over Unix sockets"), "{err}");
    }
    for mode in ["disable", "prefer", "allow"] {
        let text = format!(
            "[listen.tls]\nmode = \"disable\"\n[upstream]\nhost = \"/var/run/postgresql\"\nport = 5432\nsslmode = \"{mode}\"\n"
        );
        let config = pgvigil::snapshot::load_str(&text, Path::new("/tmp/pgvigil.toml"))
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
        let target = config.route("app");
        assert!(target.tls.is_none(), "{mode}: no TLS over a socket");
    }
}
