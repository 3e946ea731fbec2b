//! Unit tests of `writer.rs`: the sessions' group writes.

use super::*;
use crate::audit::SessionInfo;

fn start(path: &std::path::Path) -> (AuditSink, AuditWriter) {
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let config = crate::snapshot::load_str(
        "[listen.tls]\nmode = \"disable\"\n",
        std::path::Path::new("/tmp/t.toml"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let detector = Arc::new(Detector::new(&config, tx));
    AuditWriter::start(
        WriterOptions {
            log: path.to_str().unwrap_or_default(),
            capacity: 16,
            format: AuditFormat::Json,
            durability: Durability::Written,
            rotation: None,
        },
        Arc::new(Metrics::new()),
        detector,
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// A writer with `durability = "written"` on a file in a new folder, and its inline path.
fn fixture() -> (
    tempfile::TempDir,
    std::path::PathBuf,
    AuditSink,
    AuditWriter,
    Arc<Inline>,
) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("audit.jsonl");
    let (sink, writer) = start(&path);
    let inline = sink
        .inline
        .clone()
        .unwrap_or_else(|| panic!("written is inline"));
    (dir, path, sink, writer, inline)
}

fn event(id: &str) -> AuditEvent {
    AuditEvent::SessionStart {
        ts: String::new(),
        session: Arc::new(SessionInfo::connection(
            id.into(),
            "127.0.0.1:5000".parse().unwrap_or_else(|e| panic!("{e}")),
        )),
    }
}

fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn a_group_is_written_once_by_whoever_commits_first() {
    let (_dir, path, sink, writer, inline) = fixture();
    let metrics = Metrics::new();
    let a = inline.append([event("a")], &metrics);
    let b = inline.append([event("b")], &metrics);
    assert!(a.is_some() && a == b, "both join the open group");
    assert!(
        lines(&path).is_empty(),
        "nothing is written before a commit"
    );
    // The second session commits first: it writes the first one's line too.
    inline.commit(b.unwrap_or_default(), &metrics);
    assert_eq!(lines(&path).len(), 2);
    // The first finds its group written: no second write, no duplicate.
    inline.commit(a.unwrap_or_default(), &metrics);
    assert_eq!(lines(&path).len(), 2);
    // The next group has the next number.
    let c = inline.append([event("c")], &metrics);
    assert_eq!(c, a.map(|t| t + 1));
    inline.commit(c.unwrap_or_default(), &metrics);
    let written = lines(&path);
    assert_eq!(written.len(), 3);
    for (line, id) in written.iter().zip(["a", "b", "c"]) {
        assert!(line.contains(&format!("\"session_id\":\"{id}\"")), "{line}");
    }
    drop(inline);
    drop(sink);
    writer.finish();
}

#[test]
fn lines_of_a_session_gone_before_its_commit_are_written_at_shutdown() {
    let (_dir, path, sink, writer, inline) = fixture();
    let metrics = Metrics::new();
    // Appended, and the session ended before committing (its client saw no result).
    assert!(inline.append([event("gone")], &metrics).is_some());
    drop(inline);
    drop(sink);
    writer.finish();
    let written = lines(&path);
    assert_eq!(written.len(), 1, "{written:?}");
    assert!(written[0].contains("\"session_id\":\"gone\""));
}
