//! Tests of the throwaway-cluster harness itself (no proxy involved): the fixed roles
//! authenticate with their methods over TCP, TLS verifies against the generated CA, and
//! two clusters run side by side without interfering.

use std::process::{Command, Output};

use pgvigil::demo::{Cluster, ClusterOptions, HbaAuth};

/// Runs `select current_user` with the real psql over TCP and returns its output.
fn psql_tcp(cluster: &Cluster, conninfo: &str, password: Option<&str>) -> Output {
    let mut cmd = Command::new(cluster.bin("psql"));
    // Keep the developer's libpq environment out of the test.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            cmd.env_remove(key);
        }
    }
    if let Some(pw) = password {
        cmd.env("PGPASSWORD", pw);
    }
    cmd.env("PGCONNECT_TIMEOUT", "10")
        .args(["-X", "-A", "-t", "-c", "select current_user", conninfo])
        .output()
        .expect("run psql")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn conninfo(cluster: &Cluster, user: &str, extra: &str) -> String {
    format!(
        "host=127.0.0.1 port={} dbname=app user={user} {extra}",
        cluster.port()
    )
}

#[test]
fn tls_cluster_authenticates_every_test_role() {
    let cluster = Cluster::start(ClusterOptions {
        tls: true,
        ..ClusterOptions::default()
    })
    .expect("start cluster");
    let ca = cluster.ca_cert().expect("tls cluster has a CA").to_owned();
    assert!(cluster.server_cert().is_some());

    // SCRAM over TLS, verifying the server certificate against the cluster's CA.
    let tls = format!(
        "host=localhost port={} dbname=app user=scram_user sslmode=verify-full sslrootcert={}",
        cluster.port(),
        ca.display()
    );
    assert_eq!(
        stdout(&psql_tcp(&cluster, &tls, Some("scram_pass"))),
        "scram_user"
    );
    // The session really is encrypted.
    let ssl_query = Command::new(cluster.bin("psql"))
        .env("PGPASSWORD", "scram_pass")
        .args(["-X", "-A", "-t", "-c"])
        .arg("select ssl from pg_stat_ssl where pid = pg_backend_pid()")
        .arg(&tls)
        .output()
        .expect("run psql");
    assert_eq!(stdout(&ssl_query), "t");

    // md5 over plain TCP, and the password really is stored as an md5 hash.
    let md5 = conninfo(&cluster, "md5_user", "sslmode=disable");
    assert_eq!(
        stdout(&psql_tcp(&cluster, &md5, Some("md5_pass"))),
        "md5_user"
    );
    let stored = cluster
        .psql(
            "postgres",
            "postgres",
            "SELECT rolpassword LIKE 'md5%' FROM pg_authid WHERE rolname='md5_user'",
        )
        .expect("query pg_authid");
    assert_eq!(stored.trim(), "t");
    let stored = cluster
        .psql(
            "postgres",
            "postgres",
            "SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid WHERE rolname='scram_user'",
        )
        .expect("query pg_authid");
    assert_eq!(stored.trim(), "t");

    // Cleartext password and trust.
    let pw = conninfo(&cluster, "pw_user", "sslmode=disable");
    assert_eq!(stdout(&psql_tcp(&cluster, &pw, Some("pw_pass"))), "pw_user");
    let trust = conninfo(&cluster, "trust_user", "sslmode=disable");
    assert_eq!(stdout(&psql_tcp(&cluster, &trust, None)), "trust_user");

    // app_user uses the cluster-wide method (SCRAM by default) and owns `app`.
    let app = conninfo(&cluster, "app_user", "sslmode=require");
    assert_eq!(
        stdout(&psql_tcp(&cluster, &app, Some("app_pass"))),
        "app_user"
    );
    let owner = cluster
        .psql(
            "app_user",
            "app",
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()",
        )
        .expect("query pg_database");
    assert_eq!(owner.trim(), "app_user");

    // A wrong password fails with invalid_password (28P01).
    let bad = psql_tcp(&cluster, &tls, Some("wrong"));
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("password authentication failed for user \"scram_user\""),
        "unexpected psql error: {stderr}"
    );
    let log = cluster.log_tail(200);
    assert!(
        log.contains("28P01") && log.contains("password authentication failed"),
        "server log lacks the 28P01 failure:\n{log}"
    );

    // Test roles can create objects in the public schema of both databases.
    cluster
        .psql(
            "scram_user",
            "postgres",
            "CREATE TABLE t(x int); DROP TABLE t;",
        )
        .expect("scram_user creates a table");
    // psql errors carry the server message.
    let err = cluster
        .psql("postgres", "postgres", "SELECT * FROM no_such_table")
        .expect_err("query of a missing table fails");
    assert!(err.to_string().contains("no_such_table"), "{err}");

    let data_dir = cluster.data_dir().to_owned();
    cluster.stop();
    assert!(!data_dir.exists(), "stop removes the cluster directory");
}

#[test]
fn two_clusters_run_side_by_side() {
    let start = |auth| {
        std::thread::spawn(move || {
            Cluster::start(ClusterOptions {
                auth,
                max_connections: 20,
                ..ClusterOptions::default()
            })
        })
    };
    let (a, b) = (start(HbaAuth::Md5), start(HbaAuth::Password));
    let a = a.join().expect("thread a").expect("start cluster a");
    let b = b.join().expect("thread b").expect("start cluster b");
    assert_ne!(a.port(), b.port());
    assert_ne!(a.data_dir(), b.data_dir());
    assert!(a.ca_cert().is_none());

    // Data written in one is invisible in the other.
    a.psql("postgres", "app", "CREATE TABLE only_in_a(x int)")
        .expect("create in a");
    let count = "SELECT count(*) FROM pg_class WHERE relname = 'only_in_a'";
    assert_eq!(
        a.psql("postgres", "app", count).expect("query a").trim(),
        "1"
    );
    assert_eq!(
        b.psql("postgres", "app", count).expect("query b").trim(),
        "0"
    );
    let max = "SHOW max_connections";
    assert_eq!(
        a.psql("postgres", "postgres", max).expect("show").trim(),
        "20"
    );

    // Each cluster's catch-all method applies to app_user.
    let hba = "SELECT auth_method FROM pg_hba_file_rules WHERE 'app_user' = ANY(user_name) LIMIT 1";
    assert_eq!(
        a.psql("postgres", "postgres", hba).expect("hba a").trim(),
        "md5"
    );
    assert_eq!(
        b.psql("postgres", "postgres", hba).expect("hba b").trim(),
        "password"
    );
    let app = conninfo(&b, "app_user", "sslmode=disable");
    assert_eq!(stdout(&psql_tcp(&b, &app, Some("app_pass"))), "app_user");

    // Stopping one leaves the other running.
    let a_dir = a.data_dir().to_owned();
    drop(a);
    assert!(!a_dir.exists());
    assert_eq!(
        b.psql("postgres", "postgres", "SELECT 1")
            .expect("b still up")
            .trim(),
        "1"
    );
}

#[test]
fn drop_stops_the_server_even_on_panic() {
    let (port, dir) = {
        let result = std::panic::catch_unwind(|| {
            let cluster = Cluster::start(ClusterOptions::default()).expect("start cluster");
            let info = (cluster.port(), cluster.data_dir().to_owned());
            // Hand the info out through the panic payload.
            std::panic::panic_any(info);
        });
        let payload = result.expect_err("the closure panics");
        *payload
            .downcast::<(u16, std::path::PathBuf)>()
            .expect("payload")
    };
    assert!(!dir.exists(), "cluster directory removed after panic");
    let refused = std::net::TcpStream::connect(("127.0.0.1", port));
    assert!(
        refused.is_err(),
        "server on port {port} still accepts connections"
    );
}

#[test]
fn start_failure_reports_the_server_log() {
    let err = Cluster::start(ClusterOptions {
        extra_conf: vec!["shared_preload_libraries = 'pgvigil_no_such_library'".to_owned()],
        ..ClusterOptions::default()
    })
    .expect_err("a missing preload library stops the server from starting");
    let message = err.to_string();
    assert!(
        message.contains("failed to start") && message.contains("pgvigil_no_such_library"),
        "error lacks the log tail: {message}"
    );
}

#[test]
fn explicit_port_in_use_is_an_error_not_a_hang() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let err = Cluster::start(ClusterOptions {
        port: Some(port),
        ..ClusterOptions::default()
    })
    .expect_err("the port is taken");
    let message = err.to_string();
    assert!(
        message.contains(&port.to_string()) && message.contains("could not"),
        "error does not explain the bind failure: {message}"
    );
}

/// Set in the child process of `killed_owner_still_cleans_up`.
const KILL_CHILD_ENV: &str = "PGVIGIL_TEST_KILLED_CLUSTER_CHILD";

#[test]
fn killed_owner_still_cleans_up() {
    use std::io::BufRead;
    // Re-run this test binary, limited to the helper below, and SIGKILL it once its
    // cluster is up: Drop never runs, so only the watchdog can clean up.
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "cluster_owned_by_a_process_that_gets_killed"])
        .args(["--ignored", "--nocapture", "--test-threads=1"])
        .env(KILL_CHILD_ENV, "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn child test process");
    let stdout = child.stdout.take().expect("child stdout");
    // libtest prints the test name on the same line before the test's own output.
    let line = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.split_once("CLUSTER ").map(|(_, rest)| rest.to_owned()))
        .expect("child reports its cluster");
    let mut parts = line.split_whitespace();
    let port: u16 = parts.next().expect("port").parse().expect("port number");
    let dir = std::path::PathBuf::from(parts.next().expect("dir"));
    assert!(dir.exists());
    child.kill().expect("kill child");
    child.wait().expect("reap child");

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let up = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
        if !up && !dir.exists() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "after its owner was killed, the cluster on port {port} is still up ({up}) or {} still exists",
            dir.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Helper for `killed_owner_still_cleans_up`; does nothing when run on its own.
#[test]
#[ignore = "helper process for killed_owner_still_cleans_up"]
fn cluster_owned_by_a_process_that_gets_killed() {
    if std::env::var_os(KILL_CHILD_ENV).is_none() {
        return;
    }
    let cluster = Cluster::start(ClusterOptions::default()).expect("start cluster");
    println!(
        "CLUSTER {} {}",
        cluster.port(),
        cluster.socket_dir().display()
    );
    // Wait to be killed (bounded, in case the parent is gone).
    std::thread::sleep(std::time::Duration::from_secs(120));
}
