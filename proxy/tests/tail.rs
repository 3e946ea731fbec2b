//! `pgvigil tail` on a real audit log written by the proxy for psql sessions: one readable
//! line per event, no colour when the output is not a terminal, hostile statement text
//! defused, findings highlighted, and `--follow` picking up appended events and a rotated
//! file.

mod common;

use common::{cluster, psql, Proxy, ProxyOptions};
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn tail(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_pgvigil"))
        .arg("tail")
        .args(args)
        .env("COLUMNS", "100")
        .output()
        .expect("run pgvigil tail");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn the_audit_log_as_a_person_reads_it() {
    let pg = cluster();
    let proxy = Proxy::start(&pg, ProxyOptions::default());
    let conn = proxy.conninfo("app_user", "app_pass", "app", "sslmode=disable");
    let long = format!("select '{}' as padding from tail_t", "p".repeat(300));
    let (ok, _, err) = psql(
        &conn,
        "create table tail_t(x int); insert into tail_t values (1),(2)",
    );
    assert!(ok, "{err}");
    let (ok, _, _) = psql(&conn, "select * from missing_table_x");
    assert!(!ok, "the missing table fails");
    // A real ESC byte in the statement: it must not reach the terminal.
    let (ok, _, err) = psql(
        &conn,
        &format!("{long}; select '\x1b[2J' as esc from tail_t"),
    );
    assert!(ok, "{err}");
    let _ = psql(
        &proxy.conninfo("app_user", "wrong", "app", "sslmode=disable"),
        "select 1",
    );
    proxy.wait_event("the failed login", |e| e["type"] == "auth_failure");
    let path = proxy.audit_path.display().to_string();
    let out = tail(&[&path]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        !out.contains('\x1b'),
        "no colour or escape when not a terminal: {out:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("app_user@app from 127.0.0.1 connected (")),
        "{out}"
    );
    let insert = lines
        .iter()
        .find(|l| l.contains("WRITE INSERT"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        insert.ends_with("insert into tail_t values (1),(2) ok 2 rows"),
        "{insert}"
    );
    let esc = lines
        .iter()
        .find(|l| l.contains("as esc from tail_t"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(esc.contains("select '\u{fffd}[2J'"), "{esc}");
    let failed = lines
        .iter()
        .find(|l| l.contains("missing_table_x"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(failed.ends_with("ERROR 42P01"), "{failed}");
    let cut = lines
        .iter()
        .find(|l| l.contains("padding") || l.contains("pppp"))
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(cut.chars().count(), 100, "cut to COLUMNS: {cut}");
    assert!(cut.contains('…'));
    assert!(lines
        .iter()
        .any(|l| l.contains("login failed: password authentication failed")));
    assert!(lines.iter().any(|l| l.contains("disconnected after")));
    assert_eq!(
        lines.len(),
        proxy.audit_events().len(),
        "one line per event"
    );
}

#[test]
fn follow_picks_up_new_events_and_a_rotated_file() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let line = |n: u32| {
        format!(
            "{{\"ts\":\"2026-12-03T10:00:0{n}.000000Z\",\"type\":\"statement\",\"user\":\"u{n}\",\"database\":\"d\",\"client_addr\":\"10.0.0.{n}\",\"class\":\"READ\",\"command\":\"SELECT\",\"statement\":\"select {n}\",\"outcome\":\"ok\",\"rows\":1}}\n"
        )
    };
    std::fs::write(&log, line(1)).unwrap();
    let mut child = Killed(
        Command::new(env!("CARGO_BIN_EXE_pgvigil"))
            .args(["tail", "--follow"])
            .arg(&log)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = String::new();
    let mut wait_for = |needle: &str| {
        let end = Instant::now() + Duration::from_secs(10);
        while !seen.contains(needle) {
            assert!(Instant::now() < end, "{needle:?} not shown; got {seen:?}");
            if let Ok(b) = rx.recv_timeout(Duration::from_millis(100)) {
                seen.push_str(&String::from_utf8_lossy(&b));
            }
        }
    };
    wait_for("u1@d from 10.0.0.1");
    // Half a line is not shown until it is whole.
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    let two = line(2);
    f.write_all(&two.as_bytes()[..40]).unwrap();
    f.flush().unwrap();
    std::thread::sleep(Duration::from_millis(600));
    f.write_all(&two.as_bytes()[40..]).unwrap();
    wait_for("u2@d from 10.0.0.2 READ SELECT select 2 ok 1 rows");
    // logrotate: move the file away, a new one appears at the path.
    // pgvigil keeps writing to the moved file until it reopens: those events are shown
    // before the new file's.
    std::fs::rename(&log, dir.path().join("audit.jsonl.1")).unwrap();
    f.write_all(line(4).as_bytes()).unwrap();
    drop(f);
    std::fs::write(&log, line(3)).unwrap();
    wait_for("u3@d from 10.0.0.3");
    let (four, three) = (
        seen.find("u4@d").expect("the moved file's last event"),
        seen.find("u3@d").unwrap(),
    );
    assert!(four < three, "{seen}");
    drop(child);
    assert_eq!(seen.matches("u2@d").count(), 1, "{seen}");
}

/// A child process killed when the test ends, passed or not (a `--follow` left running
/// would hold the test's output open).
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn demo_suggests_tail_right_after_the_psql_command() {
    use std::io::BufRead;
    let mut child = Killed(
        Command::new(env!("CARGO_BIN_EXE_pgvigil"))
            .arg("demo")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("pgvigil demo"),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let end = Instant::now() + Duration::from_secs(90);
    while !lines.iter().any(|l: &String| l.starts_with("Audit log:")) {
        assert!(Instant::now() < end, "demo output: {lines:#?}");
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            lines.push(l);
        }
    }
    // SIGINT, as Ctrl-C: the demo cleans up after itself.
    unsafe {
        libc::kill(child.0.id() as i32, libc::SIGINT);
    }
    let _ = child.0.wait();
    let psql = lines
        .iter()
        .position(|l| l.contains("psql") && l.contains("host="))
        .unwrap();
    let tail = lines
        .iter()
        .position(|l| l.trim_start().starts_with("pgvigil tail --follow "))
        .unwrap_or_else(|| panic!("{lines:#?}"));
    let audit = lines
        .iter()
        .position(|l| l.starts_with("Audit log:"))
        .unwrap();
    assert!(psql < tail && tail < audit, "{lines:#?}");
    let suggested = lines[tail]
        .trim_start()
        .trim_start_matches("pgvigil tail --follow ");
    assert_eq!(
        lines[audit].trim_start_matches("Audit log:").trim(),
        suggested,
        "the suggestion names the demo's audit log"
    );
}
