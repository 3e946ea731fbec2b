//! The user-space audit work of one pgbench `-S` transaction, end to end, as a session does
//! it: the client's Query through the statement tracker (split, fingerprint, classifier
//! cache hit, redaction), the server's replies (RowDescription, DataRow, CommandComplete,
//! ReadyForQuery) completing the statement, the event meeting the detector, and its JSON
//! line. The load test measures the whole proxy; this isolates the part that PgBouncer does
//! not have, without the noise of the 2-core machine's scheduler.
//!
//! `cargo bench -p pgvigil --bench audit_path`.

use criterion::{criterion_group, criterion_main, Criterion};
use pgvigil::audit::{SessionInfo, Tracker};
use pgvigil::detect::Detector;
use pgvigil::metrics::Metrics;
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

fn session() -> Arc<SessionInfo> {
    Arc::new(SessionInfo {
        session_id: "bench-1".into(),
        user: Some("app".into()),
        database: Some("postgres".into()),
        client_addr: "127.0.0.1".parse().unwrap(),
        client_port: 5000,
        application_name: Some("pgbench".into()),
        tls: false,
        auth_method: None,
        upstream_auth_method: None,
        service: false,
    })
}

fn client(t: &mut Tracker, tag: u8, body: &[u8]) {
    let want = t.client_wants(tag, body.len());
    if want > 0 {
        t.client_frame(tag, &body[..want.min(body.len())]);
    }
}

fn server(t: &mut Tracker, tag: u8, body: &[u8]) {
    let want = t.server_wants(tag, body.len());
    if want > 0 {
        t.server_frame(tag, &body[..want.min(body.len())]);
    }
}

fn bench(c: &mut Criterion) {
    let config = Arc::new(
        pgvigil::snapshot::load_str("[listen.tls]\nmode = \"disable\"\n", Path::new("b.toml"))
            .unwrap(),
    );
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let detector = Detector::new(&config, tx);
    let mut tracker = Tracker::new(config.clone(), Arc::new(Metrics::new()), session());
    let row_description = {
        let mut b = vec![0, 1];
        b.extend_from_slice(b"abalance\0");
        b.extend_from_slice(&[
            0, 0, 0x40, 0x01, 0, 3, 0, 0, 0, 23, 0, 4, 0xff, 0xff, 0xff, 0xff,
        ]);
        b.extend_from_slice(&[0, 0]);
        b
    };
    let data_row = [0u8, 1, 0, 0, 0, 1, b'0'];
    let mut aid = 1u32;
    let mut line = Vec::with_capacity(1024);
    c.bench_function("pgbench -S transaction: track, detect, serialise", |b| {
        b.iter(|| {
            aid = aid.wrapping_mul(1_103_515_245).wrapping_add(12345) % 1_000_000 + 1;
            let query = format!("SELECT abalance FROM pgbench_accounts WHERE aid = {aid};\0");
            client(&mut tracker, b'Q', query.as_bytes());
            server(&mut tracker, b'T', &row_description);
            server(&mut tracker, b'D', &data_row);
            server(&mut tracker, b'C', b"SELECT 1\0");
            server(&mut tracker, b'Z', b"I");
            for event in tracker.take_events() {
                detector.observe(&event, false);
                line.clear();
                event.write_json(&mut line).unwrap();
                black_box(&line);
            }
        })
    });
    // The JSON line alone, for one statement event of that transaction.
    let query = b"SELECT abalance FROM pgbench_accounts WHERE aid = 42;\0";
    client(&mut tracker, b'Q', query);
    server(&mut tracker, b'T', &row_description);
    server(&mut tracker, b'D', &data_row);
    server(&mut tracker, b'C', b"SELECT 1\0");
    server(&mut tracker, b'Z', b"I");
    let events = tracker.take_events();
    c.bench_function("statement event: JSON line", |b| {
        b.iter(|| {
            for event in &events {
                line.clear();
                event.write_json(&mut line).unwrap();
                black_box(&line);
            }
        })
    });
    while rx.try_recv().is_ok() {}
}

criterion_group!(benches, bench);
criterion_main!(benches);
