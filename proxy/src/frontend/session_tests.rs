//! Unit tests of `session.rs`: what one session's task costs in memory while it waits.

use super::*;
use crate::audit::{AuditWriter, WriterOptions};
use crate::detect::Detector;
use crate::metrics::Metrics;

/// The session task's future is allocated once per connection and lives as long as the
/// session: its size is a floor under every idle session's memory.
#[tokio::test]
async fn a_session_future_is_small() {
    let dir = tempfile::tempdir().unwrap();
    let config = crate::snapshot::load_str(
        "[listen.tls]\nmode = \"disable\"\n",
        &dir.path().join("pgvigil.toml"),
    )
    .unwrap();
    let metrics = Arc::new(Metrics::new());
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let detector = Arc::new(Detector::new(&config, tx));
    let log = dir.path().join("audit.jsonl");
    let (sink, _writer) = AuditWriter::start(
        WriterOptions {
            log: log.to_str().unwrap(),
            capacity: 16,
            format: config.file.audit.format,
            durability: config.file.audit.durability,
            rotation: None,
        },
        metrics.clone(),
        detector,
    )
    .unwrap();
    let shared = Arc::new(Shared::new(config, sink, metrics));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _client = TcpStream::connect(addr).await.unwrap();
    let (tcp, peer) = listener.accept().await.unwrap();
    let ticket = shared.admission.admit(Some(peer.ip())).unwrap();
    let (_force_tx, force_rx) = watch::channel(false);
    let fut = run(shared.clone(), tcp, peer, ticket, false, force_rx);
    let size = std::mem::size_of_val(&fut);
    eprintln!("session future: {size} bytes");
    // A guard against regressions, at the debug build's size (release is smaller): the
    // login, the goodbye and each audit hand-over are boxed, and the client direction
    // carries no audit state (6216 bytes before, 3720 after; 4000 since the connections are
    // held in it rather than behind tokio::io::split's allocations).
    assert!(size <= 4096, "session future is {size} bytes");
}
