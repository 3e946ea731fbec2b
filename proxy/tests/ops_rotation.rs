//! Log rotation as an operator does it: logrotate moves the audit log and the findings
//! file while clients keep working, then sends SIGUSR1; and the built-in rotation by size.
//! Every statement is counted across all the files: each must be in exactly one, once.

mod common;

use common::{cluster, psql, wait_until, Proxy, ProxyOptions};
use pgvigil::demo::cluster::Cluster;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

fn pg() -> &'static Cluster {
    static PG: OnceLock<Cluster> = OnceLock::new();
    PG.get_or_init(cluster)
}

/// Every complete line of a file, parsed (a missing file is empty).
fn events(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let end = text.rfind('\n').map(|i| i + 1).unwrap_or(0);
    text[..end]
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("torn line {l:?}: {e}")))
        .collect()
}

/// The `select 'tag', N` statements in `events`, as N.
fn numbered(events: &[Value], tag: &str) -> Vec<u64> {
    let prefix = format!("select '{tag}', ");
    events
        .iter()
        .filter(|e| e["type"] == "statement")
        .filter_map(|e| {
            let rest = e["statement"].as_str()?.trim().strip_prefix(&prefix)?;
            rest.trim_end_matches(';').trim().parse().ok()
        })
        .collect()
}

/// A psql script of `n` statements numbered from `from`.
fn script(tag: &str, from: u64, n: u64) -> String {
    (from..from + n)
        .map(|i| format!("select '{tag}', {i};\n"))
        .collect()
}

#[test]
fn logrotate_move_then_sigusr1_loses_and_duplicates_nothing() {
    // `select 'tag', N` touches no table: catalog noise, written with log_noise.
    let proxy = Proxy::start(
        pg(),
        ProxyOptions {
            audit: "log_noise = true".into(),
            ..ProxyOptions::default()
        },
    );
    let conn = proxy.conninfo("postgres", "x", "postgres", "sslmode=disable");
    // Load in the background: 8 sessions of 250 statements each, so the move and the
    // signal land while statements are in flight.
    let load = {
        let conn = conn.clone();
        std::thread::spawn(move || {
            for s in 0..8u64 {
                let (ok, _, err) = psql(&conn, &script("rot", s * 250, 250));
                assert!(ok, "session {s}: {err}");
            }
        })
    };
    let rotated = proxy.audit_path.with_extension("jsonl.1");
    wait_until(
        "some events before the move",
        Duration::from_secs(60),
        || numbered(&events(&proxy.audit_path), "rot").len() >= 300,
    );
    std::fs::rename(&proxy.audit_path, &rotated).expect("mv audit.jsonl");
    // Between the move and the signal pgvigil writes on to the moved file (as with
    // logrotate, whose postrotate runs after the move).
    std::thread::sleep(Duration::from_millis(200));
    proxy.signal(libc::SIGUSR1);
    load.join().expect("load thread");
    wait_until(
        "all 2000 statements written",
        Duration::from_secs(30),
        || {
            numbered(&events(&rotated), "rot").len()
                + numbered(&events(&proxy.audit_path), "rot").len()
                >= 2000
        },
    );
    let old = numbered(&events(&rotated), "rot");
    let new = numbered(&events(&proxy.audit_path), "rot");
    assert!(
        !old.is_empty() && !new.is_empty(),
        "old {} new {}",
        old.len(),
        new.len()
    );
    let mut count: BTreeMap<u64, usize> = BTreeMap::new();
    for n in old.iter().chain(&new) {
        *count.entry(*n).or_default() += 1;
    }
    let missing: Vec<u64> = (0..2000).filter(|n| !count.contains_key(n)).collect();
    let twice: Vec<(&u64, &usize)> = count.iter().filter(|(_, c)| **c > 1).collect();
    assert!(missing.is_empty(), "lost: {missing:?}");
    assert!(twice.is_empty(), "duplicated: {twice:?}");
    // The order is kept: every event of the old file precedes every event of the new.
    assert!(old.iter().max() < new.iter().min(), "files interleave");
    assert!(
        proxy.log().contains("audit log reopened"),
        "{}",
        proxy.log()
    );

    // The findings file: moved, then the next finding goes to a new file at the path.
    let findings = proxy.dir.path().join("findings.jsonl");
    let (ok, _, err) = psql(&conn, "select length(pg_read_file('PG_VERSION'))");
    assert!(ok, "{err}");
    proxy.wait_finding("dangerous-function", |_| true);
    let moved = proxy.dir.path().join("findings.jsonl.1");
    std::fs::rename(&findings, &moved).expect("mv findings.jsonl");
    proxy.signal(libc::SIGUSR1);
    let other = proxy.conninfo("scram_user", "scram_pass", "postgres", "sslmode=disable");
    // Refused for lack of privilege, but the attempt is a finding all the same.
    let _ = psql(&other, "select length(pg_read_file('PG_VERSION'))");
    proxy.wait_finding("dangerous-function", |f| f["user"] == "scram_user");
    let old_findings = events(&moved);
    assert_eq!(old_findings.len(), 1, "{old_findings:?}");
    assert_eq!(old_findings[0]["user"], "postgres");
    let new_findings = proxy.findings();
    assert_eq!(new_findings.len(), 1, "{new_findings:?}");
}

#[test]
fn built_in_rotation_by_size_keeps_n_files_and_every_line_whole() {
    let proxy = Proxy::start(
        pg(),
        ProxyOptions {
            audit: "rotate_size = \"16KiB\"\nrotate_keep = 3\nlog_noise = true".into(),
            ..ProxyOptions::default()
        },
    );
    let conn = proxy.conninfo("postgres", "x", "postgres", "sslmode=disable");
    for s in 0..4u64 {
        let (ok, _, err) = psql(&conn, &script("size", s * 500, 500));
        assert!(ok, "{err}");
    }
    let file = |n: usize| match n {
        0 => proxy.audit_path.clone(),
        n => proxy.audit_path.with_extension(format!("jsonl.{n}")),
    };
    wait_until(
        "the last statement written",
        Duration::from_secs(30),
        || (0..=3).any(|n| numbered(&events(&file(n)), "size").contains(&1999)),
    );
    assert!(!file(4).exists(), "rotate_keep = 3 keeps 3 rotated files");
    for n in 1..=3 {
        let len = std::fs::metadata(file(n)).map(|m| m.len()).unwrap_or(0);
        assert!(len >= 16 * 1024, "{}: {len} bytes", file(n).display());
    }
    // Oldest to newest, the kept files hold one run of statements without a gap or a
    // repeat: nothing is lost or written twice at a rotation.
    let mut all = Vec::new();
    for n in (0..=3).rev() {
        let these = numbered(&events(&file(n)), "size");
        assert!(
            !these.is_empty() || n == 0,
            "{} is empty",
            file(n).display()
        );
        all.extend(these);
    }
    let first = all[0];
    assert!(first > 0, "the oldest statements were rotated away");
    let expected: Vec<u64> = (first..2000).collect();
    assert_eq!(all, expected, "a gap or a repeat across rotated files");
    assert!(proxy.log().contains("audit log rotated"));
}

#[test]
fn rotate_size_is_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("pgvigil.toml");
    let tls = "[listen.tls]\nmode = \"disable\"\n";
    for (text, want) in [
        ("[audit]\nrotate_size = \"1.5GiB\"\n", "is not a size"),
        ("[audit]\nrotate_size = \"100\"\n", "at least 4KiB"),
        (
            "[audit]\nrotate_size = \"1GiB\"\nrotate_keep = 0\n",
            "rotate_keep",
        ),
        (
            "[audit]\nlog = \"-\"\nrotate_size = \"1GiB\"\n",
            "standard output",
        ),
    ] {
        std::fs::write(&cfg, format!("{tls}{text}")).expect("write");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_pgvigil"))
            .args(["check", "--config"])
            .arg(&cfg)
            .output()
            .expect("pgvigil check");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(want), "{text}: {err}");
    }
    std::fs::write(
        &cfg,
        format!("{tls}[audit]\nrotate_size = \"1GiB\"\nrotate_keep = 5\n"),
    )
    .expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pgvigil"))
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .expect("pgvigil check");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
