//! The PostgreSQL JDBC driver (what DBeaver, IntelliJ and Java applications use) through
//! the proxy, over TLS and over plaintext. The client program is tests/jdbc/Main.java; it
//! prints OK when every check in it passed.
//!
//! Needs `javac`/`java` and the driver jar (Debian: default-jdk-headless,
//! libpostgresql-jdbc-java; or set PGVIGIL_JDBC_JAR). Without them the test is skipped
//! with a message, except under CI=true, where it fails.

mod common;
use common::*;

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn jdbc_metadata_prepared_statements_batch_and_cancel() {
    let Some((javac, java, jar)) = java::java_tools_or_skip("jdbc test") else {
        return;
    };
    let classes = tempfile::tempdir().expect("temp dir");
    java::compile(&javac, &jar, classes.path(), "Main.java");

    let pg = cluster();
    let proxy = Proxy::start(&pg, ProxyOptions::default());
    let classpath = format!("{}:{}", jar.display(), classes.path().display());
    for (sslmode, tag) in [("require", "tls"), ("disable", "plain")] {
        let url = format!(
            "jdbc:postgresql://127.0.0.1:{}/app?sslmode={sslmode}",
            proxy.port
        );
        let (ok, out) = java::run_bounded(
            Command::new(&java)
                .arg("-cp")
                .arg(&classpath)
                .arg("Main")
                .args([url.as_str(), "app_user", "app_pass", tag]),
            Duration::from_secs(120),
        );
        assert!(
            ok && out.lines().any(|l| l.trim() == "OK"),
            "JDBC client over sslmode={sslmode} failed:\n{out}\nproxy log:\n{}",
            proxy.log()
        );
        // pgjdbc sets application_name with SET after connecting, so the startup packet
        // (and the session_start event) has none: tell the runs apart by their TLS flag.
        let tls = sslmode == "require";
        proxy.wait_event("JDBC session_start", |e| {
            e["type"] == "session_start" && e["user"] == "app_user" && e["tls"] == tls
        });
    }
    // Audit: one statement event per execution, with the server's verdict, through the
    // driver's unnamed and (past prepareThreshold) named server-side statements.
    for tag in ["tls", "plain"] {
        let child = format!("jdbc_child_{tag}");
        let insert = format!("insert into {child} (id, parent_id, payload) values ($1, $2, $3)");
        let select = format!(
            "select c.id, p.name, c.payload from {child} c join jdbc_parent_{tag} p on p.id = c.parent_id where c.id = $1"
        );
        let batch = format!("insert into {child} (id, parent_id) values ($1, 1)");
        let mut events = Vec::new();
        wait_until("JDBC statement events", Duration::from_secs(10), || {
            events = proxy
                .audit_events()
                .into_iter()
                .filter(|e| e["type"] == "statement")
                .collect();
            events
                .iter()
                .filter(|e| e["statement"] == batch.as_str())
                .count()
                >= 4
        });
        let of = |text: &str| -> Vec<&serde_json::Value> {
            events.iter().filter(|e| e["statement"] == text).collect()
        };
        for (text, command) in [(&insert, "INSERT"), (&select, "SELECT")] {
            let ev = of(text);
            assert_eq!(ev.len(), 40, "{text}: one event per execution");
            for e in ev {
                assert_eq!(e["protocol"], "extended", "{e}");
                assert_eq!(e["outcome"], "ok", "{e}");
                assert_eq!(e["rows"], 1, "{e}");
                assert_eq!(e["command"], command, "{e}");
                assert_eq!(e["user"], "app_user");
            }
        }
        // The batch: one Sync for four inserts, the third a duplicate key.
        let outcomes: Vec<(String, String)> = of(&batch)
            .iter()
            .map(|e| {
                (
                    e["outcome"].as_str().unwrap_or_default().to_string(),
                    e["sqlstate"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        let want = [("ok", ""), ("ok", ""), ("error", "23505"), ("skipped", "")]
            .map(|(o, s)| (o.to_string(), s.to_string()));
        assert_eq!(outcomes, want, "batch outcomes");
    }
    // The query timeouts went through the proxy's cancel path.
    // Counted once the server closed the cancel connection: poll, bounded.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let forwarded = proxy.metric("pgvigil_cancel_requests_total{result=\"forwarded\"}");
        if forwarded >= 2.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "cancels forwarded: {forwarded}\n{}",
            proxy.metrics()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
