//! The detector's cost per statement event with the built-in rules, next to the
//! classifier's cache hit (`benches/classify.rs`), the other per-statement cost a session
//! pays: a pgbench UPDATE by a service account (no rule matches), the same by a human
//! (`human-data-change` matches and is in its cooldown), and a failed login (counted per
//! client address).
//!
//! Enforcement's cost is measured next to them: the decision a session with refusals takes
//! before forwarding each statement, with every shipped deny rule enabled and none
//! matching (the common case), and with a read-only policy too.
//!
//! `cargo bench -p pgvigil --bench detect`.

use criterion::{criterion_group, criterion_main, Criterion};
use pgvigil::audit::{AuditEvent, AuthFailure, Outcome, SessionInfo, StatementEvent};
use pgvigil::detect::Detector;
use pgvigil::sql::{Classifier, ClassifierOptions};
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

const PGBENCH_UPDATE: &str =
    "UPDATE pgbench_accounts SET abalance = abalance + -4321 WHERE aid = 81234;";

fn session(user: &str, service: bool) -> Arc<SessionInfo> {
    Arc::new(SessionInfo {
        session_id: "bench-1".into(),
        user: Some(user.into()),
        database: Some("app".into()),
        client_addr: "10.1.2.3".parse().unwrap(),
        client_port: 5000,
        application_name: Some("pgbench".into()),
        tls: false,
        auth_method: None,
        upstream_auth_method: None,
        service,
    })
}

fn statement(user: &str, service: bool) -> AuditEvent {
    let classifier = Classifier::new(ClassifierOptions::default());
    let st = classifier.classify_statement(PGBENCH_UPDATE);
    AuditEvent::Statement {
        ts: String::new(),
        session: session(user, service),
        statement: Box::new(StatementEvent {
            statement_id: 1,
            substatement_id: 1,
            class: st.class,
            extra_objects: Vec::new(),
            statement: st.text,
            prepared_statement: None,
            cursor_query: None,
            uncaptured: None,
            noise: false,
            protocol: "simple",
            service,
            logged: !service,
            role: None,
            outcome: Outcome::Ok,
            sqlstate: None,
            error: None,
            rows: Some(1),
            rows_total: None,
            rows_before: 0,
            duration_ms: Some(0.1),
            parameters: None,
            denied_by: None,
            session_json: None,
        }),
    }
}

fn bench(c: &mut Criterion) {
    let config = pgvigil::snapshot::load_str(
        "[listen.tls]\nmode = \"disable\"\n",
        Path::new("bench.toml"),
    )
    .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let detector = Detector::new(&config, tx);
    // The reference, measured in the same run: what a session already pays per statement
    // for its classification when the cache has the statement's shape.
    let warm = Classifier::new(ClassifierOptions::default());
    warm.classify_query(PGBENCH_UPDATE);
    c.bench_function("reference: classifier cache hit (pgbench UPDATE)", |b| {
        b.iter(|| {
            warm.classify_query(black_box(
                "UPDATE pgbench_accounts SET abalance = abalance + 1234 WHERE aid = 5;",
            ))
        })
    });
    let svc = statement("svc_app", true);
    c.bench_function("observe: service account UPDATE (no rule matches)", |b| {
        b.iter(|| detector.observe(black_box(&svc), true))
    });
    let human = statement("alice", false);
    c.bench_function(
        "observe: human UPDATE (human-data-change, in cooldown)",
        |b| b.iter(|| detector.observe(black_box(&human), false)),
    );
    let failure = AuditEvent::AuthFailure {
        ts: String::new(),
        session: session("alice", false),
        failure: AuthFailure {
            sqlstate: Some("28P01".into()),
            reason: "password authentication failed".into(),
            blocked_until: None,
        },
    };
    c.bench_function("observe: failed login (failed-logins, one address)", |b| {
        b.iter(|| detector.observe(black_box(&failure), false))
    });
    enforcement(c);
    while rx.try_recv().is_ok() {}
}

fn enforcement(c: &mut Criterion) {
    use pgvigil::enforce::{SessionPolicy, WriteHealth};
    let config = pgvigil::snapshot::load_str(
        "[listen.tls]\nmode = \"disable\"\n[rules]\nenable = [\"deny-unbounded-write\", \
         \"deny-human-drop\", \"deny-copy-program\", \"deny-server-files\", \
         \"deny-alter-system\", \"deny-large-objects\"]\n\
         [audit]\non_write_error = \"refuse\"\n\
         [access]\n[[access.policy]]\nusers = [\"analyst_*\"]\nread_only = true\n",
        Path::new("bench.toml"),
    )
    .unwrap();
    let classifier = Classifier::new(ClassifierOptions::default());
    let st = classifier.classify_statement(PGBENCH_UPDATE);
    let health = Arc::new(WriteHealth::default());
    let human = session("alice", false);
    let policy = SessionPolicy::new(&config, &human, health.clone());
    assert!(policy.active());
    let one = std::slice::from_ref(&st);
    let classify = |sql: &str| classifier.classify_statement(sql);
    assert!(policy.decide_all(one, false, &human, &classify).is_none());
    c.bench_function(
        "enforce: human UPDATE, 6 deny rules enabled, none matches",
        |b| b.iter(|| policy.decide_all(black_box(one), false, &human, &classify)),
    );
    let analyst = session("analyst_1", false);
    let ro = SessionPolicy::new(&config, &analyst, health);
    let select =
        classifier.classify_statement("SELECT abalance FROM pgbench_accounts WHERE aid = 1");
    let sel = std::slice::from_ref(&select);
    assert!(ro.decide_all(sel, false, &analyst, &classify).is_none());
    c.bench_function(
        "enforce: read-only SELECT, 6 deny rules, none matches",
        |b| b.iter(|| ro.decide_all(black_box(sel), false, &analyst, &classify)),
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
