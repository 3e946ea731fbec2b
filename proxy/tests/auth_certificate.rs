//! `[auth] mode = "certificate"` with psql against a real cluster: the client's certificate
//! is its only credential; upstream, pgvigil presents a certificate minted for the session
//! by the CA that `pgvigil certs --upstream-client-ca` wrote, which the server trusts
//! (`ssl_ca_file`, `hostssl ... cert`), as the README's steps set it up.
//!
//! verify-full (CN = user) and verify-ca with a cert_map (exact DN and regex entries);
//! refusals: another user's certificate, a user the map does not name, a user the server
//! will not let in with a certificate. Every refusal is audited.

mod common;
use common::*;
use pgvigil::demo::cluster::{Cluster, ClusterOptions, HbaAuth};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// `pgvigil certs --upstream-client-ca` output, readable by the cluster's owner.
fn upstream_ca() -> &'static (tempfile::TempDir, PathBuf, PathBuf) {
    static CA: OnceLock<(tempfile::TempDir, PathBuf, PathBuf)> = OnceLock::new();
    CA.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = Command::new(env!("CARGO_BIN_EXE_pgvigil"))
            .args(["certs", "--upstream-client-ca", "--out"])
            .arg(dir.path())
            .output()
            .expect("pgvigil certs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(said.contains("upstream-client-ca.crt"), "{said}");
        let crt = dir.path().join("upstream-client-ca.crt");
        let key = dir.path().join("upstream-client-ca.key");
        // The server runs as another user: it reads the CA certificate (never the key).
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&crt, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the CA key must be private");
        (dir, crt, key)
    })
}

/// The cluster: trusts the upstream client CA, and lets cert_user and cert_other in with
/// a certificate only.
fn pg() -> &'static Cluster {
    static PG: OnceLock<Cluster> = OnceLock::new();
    PG.get_or_init(|| {
        let (_, crt, _) = upstream_ca();
        let c = Cluster::start(ClusterOptions {
            tls: true,
            auth: HbaAuth::ScramSha256,
            extra_conf: vec![format!("ssl_ca_file = '{}'", crt.display())],
            ..ClusterOptions::default()
        })
        .expect("cluster");
        let hba = c.data_dir().join("pg_hba.conf");
        let old = std::fs::read_to_string(&hba).expect("read pg_hba.conf");
        let lines = "hostssl all cert_user 127.0.0.1/32 cert\n\
                     hostssl all cert_other 127.0.0.1/32 cert\n";
        std::fs::write(&hba, format!("{lines}{old}")).expect("write pg_hba.conf");
        c.psql(
            "postgres",
            "postgres",
            "CREATE ROLE cert_user LOGIN; CREATE ROLE cert_other LOGIN; SELECT pg_reload_conf();",
        )
        .expect("roles");
        wait_until(
            "pg_hba.conf reload",
            std::time::Duration::from_secs(10),
            || {
                c.psql(
                    "postgres",
                    "postgres",
                    "SELECT count(*) FROM pg_hba_file_rules WHERE auth_method = 'cert'",
                )
                .map(|n| n.trim() == "2")
                .unwrap_or(false)
            },
        );
        c
    })
}

fn cert_proxy(tls_mode: &'static str, cert_map: &str) -> Proxy {
    let (_, crt, key) = upstream_ca();
    Proxy::start(
        pg(),
        ProxyOptions {
            tls_mode,
            auth_mode: "certificate",
            sslmode: "verify-full",
            client_cert_user: "cert_user",
            auth: format!(
                "{cert_map}\n[auth.upstream_cert]\nca_cert = \"{}\"\nca_key = \"{}\"\nlifetime = \"10m\"",
                crt.display(),
                key.display()
            ),
            ..ProxyOptions::default()
        },
    )
}

/// A connection string with the client certificate and no password at all.
fn cert_conninfo(p: &Proxy, user: &str, app: &str) -> String {
    format!(
        "host=127.0.0.1 port={} user={user} dbname=postgres sslmode=verify-full sslrootcert={} \
         sslcert={} sslkey={} application_name={app}",
        p.port,
        p.certs.ca_cert.display(),
        p.certs.client_cert.display(),
        p.certs.client_key.display()
    )
}

const WHO: &str = "select current_user || ',' || (select client_dn from pg_stat_ssl where pid = pg_backend_pid())";

fn refusal(p: &Proxy, user: &str, app: &str) -> (String, serde_json::Value) {
    let (ok, _, err) = psql(&cert_conninfo(p, user, app), "select 1");
    assert!(!ok, "{user} logged in with cert_user's certificate");
    let e = p.wait_event(&format!("auth_failure {app}"), |e| {
        e["type"] == "auth_failure" && e["application_name"] == app
    });
    assert_eq!(e["user"], user, "{e}");
    assert_eq!(e["sqlstate"], "28000", "{e}");
    (err, e)
}

#[test]
fn verify_full_certificate_is_the_login_on_both_legs() {
    let p = cert_proxy("verify-full", "");
    let (ok, out, err) = psql(&cert_conninfo(&p, "cert_user", "cert_ok"), WHO);
    assert!(ok, "login failed: {err}\n{}", p.log());
    // The server saw pgvigil's minted certificate for the user.
    assert_eq!(out, "cert_user,/CN=cert_user");
    let e = p.wait_event("session_start cert_ok", |e| {
        e["type"] == "session_start" && e["application_name"] == "cert_ok"
    });
    assert_eq!(e["auth_method"], "cert", "{e}");
    assert_eq!(e["upstream_auth_method"], "cert", "{e}");

    // cert_user's certificate used to log in as cert_other.
    let (err, _) = refusal(&p, "cert_other", "cert_other_user");
    assert!(
        err.contains("certificate authentication failed for user \"cert_other\""),
        "{err}"
    );
}

#[test]
fn verify_ca_with_a_cert_map() {
    let p = cert_proxy(
        "verify-ca",
        r#"cert_map = { "CN=cert_user" = "cert_other", "/^CN=cert_(user)$" = "scram_\\1" }"#,
    );
    // The exact entry: cert_user's certificate logs in as cert_other.
    let (ok, out, err) = psql(&cert_conninfo(&p, "cert_other", "mapped"), WHO);
    assert!(ok, "login failed: {err}\n{}", p.log());
    assert_eq!(out, "cert_other,/CN=cert_other");

    // Not mapped to its own CN: refused, with the subject in the hint.
    let (err, _) = refusal(&p, "cert_user", "unmapped");
    assert!(
        err.contains("certificate authentication failed for user \"cert_user\""),
        "{err}"
    );
    assert!(err.contains("CN=cert_user"), "{err}");

    // The regex entry maps it to scram_user, whom the server lets in only with a
    // password: pgvigil explains what to change on the server.
    let (err, e) = refusal(&p, "scram_user", "server_refuses");
    assert!(
        err.contains("pgvigil holds only a client certificate"),
        "{err}"
    );
    assert!(err.contains("hostssl"), "{err}");
    assert_eq!(e["upstream_auth_method"], "cert", "{e}");
}

#[test]
fn check_refuses_certificate_mode_without_verified_certificates() {
    let (_, crt, key) = upstream_ca();
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = dir.path().join("pgvigil.toml");
    std::fs::write(
        &cfg,
        format!(
            "[listen.tls]\nmode = \"disable\"\n[upstream]\nsslmode = \"disable\"\n[auth]\nmode = \"certificate\"\n\
             [auth.upstream_cert]\nca_cert = \"{}\"\nca_key = \"{}\"\n",
            crt.display(),
            key.display()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pgvigil"))
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .expect("pgvigil check");
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("verify-full"), "{text}");
    assert!(text.contains("TLS is required"), "{text}");
}
