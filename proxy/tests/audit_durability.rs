//! The audit trail is as durable as configured, and never lies about it: kill -9 under a
//! write load with `durability = "written"`, a full disk (a small tmpfs), logrotate's
//! SIGUSR1. Each test attacks the promise the way an attacker aiming at the audit volume or
//! the process would.

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

fn pg() -> &'static pgvigil::demo::cluster::Cluster {
    static PG: OnceLock<pgvigil::demo::cluster::Cluster> = OnceLock::new();
    PG.get_or_init(cluster)
}

const WRITTEN: &str = "pgvigil_audit_events_total{result=\"written\"}";
const FAILED: &str = "pgvigil_audit_events_total{result=\"failed\"}";

/// Every complete line of the file parses as JSON (no torn line, nothing glued). A last
/// line without its newline is a write in progress (or one being cut back after it failed),
/// which a reader may catch mid-way; it is left out, as a tailing reader must.
fn assert_whole_lines(path: &std::path::Path) -> usize {
    let text = std::fs::read_to_string(path).expect("audit log");
    let complete = text.rfind('\n').map_or("", |i| &text[..=i]);
    let mut n = 0;
    for (i, line) in complete.lines().enumerate() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("line {} is not an event ({e}): {line:?}", i + 1));
        n += 1;
    }
    n
}

#[test]
fn kill_9_under_writes_loses_no_acknowledged_statement() {
    let pg = pg();
    pg.psql(
        "postgres",
        "app",
        "create table if not exists kill9 (client int, n int); grant all on kill9 to app_user;",
    )
    .expect("table");
    let mut proxy = Proxy::start(
        pg,
        ProxyOptions {
            tls_mode: "disable",
            audit: "durability = \"written\"".into(),
            ..ProxyOptions::default()
        },
    );
    // 4 clients insert one row per statement, autocommit, as fast as they can.
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let script: String = (0..20_000)
                .map(|n| format!("insert into kill9 values ({c}, {n});\n"))
                .collect();
            let mut child = Command::new("psql")
                .args(["-X", "-w", "-q", "-d"])
                .arg(proxy.conninfo(
                    "app_user",
                    "app_pass",
                    "app",
                    &format!("sslmode=disable application_name=kill9_{c}"),
                ))
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("psql");
            let mut stdin = child.stdin.take().expect("stdin");
            std::thread::spawn(move || {
                use std::io::Write;
                let _ = stdin.write_all(script.as_bytes());
            });
            child
        })
        .collect();
    wait_until("rows arriving", Duration::from_secs(30), || {
        pg.psql("postgres", "app", "select count(*) from kill9")
            .map(|n| n.trim().parse::<u64>().unwrap_or(0) > 2000)
            .unwrap_or(false)
    });
    proxy.kill_hard();
    for mut c in clients {
        let _ = c.wait();
    }
    let events = proxy.audit_events();
    for c in 0..4 {
        let rows: u64 = pg
            .psql(
                "postgres",
                "app",
                &format!("select count(*) from kill9 where client = {c}"),
            )
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let logged = events
            .iter()
            .filter(|e| {
                e["type"] == "statement"
                    && e["application_name"] == format!("kill9_{c}").as_str()
                    && e["command"] == "INSERT"
                    && e["outcome"] == "ok"
            })
            .count() as u64;
        // The server may have committed the one statement in flight whose event was not
        // written yet (its client never saw the reply); nothing more may be missing.
        assert!(
            logged <= rows && rows - logged <= 1,
            "client {c}: {rows} rows committed, {logged} audited"
        );
    }
    assert_whole_lines(&proxy.audit_path);
}

#[test]
fn a_full_disk_never_tears_a_line_and_the_counters_tell() {
    let disk = SmallDisk::mount("256k");
    let log = disk.dir.path().join("audit.jsonl");
    let mut proxy = Proxy::start(
        pg(),
        ProxyOptions {
            tls_mode: "disable",
            audit_log: log.display().to_string(),
            // Literal-only SELECTs are noise: written only with log_noise.
            audit: "log_noise = true".into(),
            ..ProxyOptions::default()
        },
    );
    // Fill the disk, leaving a few KiB.
    let filler = disk.dir.path().join("filler");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=1k", "count=250"])
        .arg(format!("of={}", filler.display()))
        .stderr(Stdio::null())
        .status();
    let info = proxy.conninfo(
        "app_user",
        "app_pass",
        "app",
        "sslmode=disable application_name=fulldisk",
    );
    // Sessions go on (on_write_error = "continue"), while events cannot all be written.
    let many: String = (0..400)
        .map(|i| format!("select {i} as padding_padding_padding;"))
        .collect();
    for _ in 0..5 {
        let (ok, _, err) = psql(&info, &many);
        assert!(ok, "{err}");
    }
    wait_until("failed writes counted", Duration::from_secs(10), || {
        proxy.metric(FAILED) > 0.0
    });
    // The written counter is the lines in the file (both read again until they agree:
    // session events may still be on their way).
    assert_whole_lines(&log);
    wait_until("written counter = lines", Duration::from_secs(10), || {
        proxy.metric(WRITTEN) == assert_whole_lines(&log) as f64
    });
    // Space comes back: the next events are written on fresh lines.
    std::fs::remove_file(&filler).unwrap();
    let (ok, _, err) = psql(&info, "select 'after the disk was freed'");
    assert!(ok, "{err}");
    proxy.wait_event("an event after space returned", |e| {
        e["statement"]
            .as_str()
            .is_some_and(|s| s.contains("after the disk was freed"))
    });
    wait_until("counters settle", Duration::from_secs(10), || {
        proxy.metric(WRITTEN) == assert_whole_lines(&log) as f64
    });
    // Nothing torn is left behind at the end either.
    wait_until(
        "the file ends on a whole line",
        Duration::from_secs(10),
        || std::fs::read(&log).is_ok_and(|b| b.last() == Some(&b'\n')),
    );
    assert_healthy(&mut proxy);
}

#[test]
fn sigusr1_reopens_the_log_and_loses_nothing() {
    let mut proxy = Proxy::start(
        pg(),
        ProxyOptions {
            tls_mode: "disable",
            audit: "log_noise = true".into(),
            ..ProxyOptions::default()
        },
    );
    let info = proxy.conninfo(
        "app_user",
        "app_pass",
        "app",
        "sslmode=disable application_name=rotate",
    );
    let (ok, _, err) = psql(&info, "select 'before rotation'");
    assert!(ok, "{err}");
    proxy.wait_event("before", |e| {
        e["statement"]
            .as_str()
            .is_some_and(|s| s.contains("before rotation"))
    });
    // logrotate: move the file away, then SIGUSR1.
    let rotated = proxy.audit_path.with_extension("jsonl.1");
    std::fs::rename(&proxy.audit_path, &rotated).unwrap();
    let (ok, _, err) = psql(&info, "select 'between move and signal'");
    assert!(ok, "{err}");
    proxy.signal(libc::SIGUSR1);
    wait_until("reopened", Duration::from_secs(10), || {
        proxy.log().contains("audit log reopened")
    });
    assert!(
        proxy.is_running(),
        "SIGUSR1 killed pgvigil:\n{}",
        proxy.log()
    );
    let (ok, _, err) = psql(&info, "select 'after rotation'");
    assert!(ok, "{err}");
    proxy.wait_event("after, in the new file", |e| {
        e["statement"]
            .as_str()
            .is_some_and(|s| s.contains("after rotation"))
    });
    let old = std::fs::read_to_string(&rotated).unwrap();
    let new = std::fs::read_to_string(&proxy.audit_path).unwrap();
    for (text, in_old) in [
        ("before rotation", true),
        ("between move and signal", true),
        ("after rotation", false),
    ] {
        assert_eq!(
            old.matches(text).count(),
            usize::from(in_old),
            "{text} in the old file"
        );
        assert_eq!(
            new.matches(text).count(),
            usize::from(!in_old),
            "{text} in the new file"
        );
    }
    // SIGUSR2 is ignored on purpose, not fatal.
    proxy.signal(libc::SIGUSR2);
    std::thread::sleep(Duration::from_millis(200));
    assert_healthy(&mut proxy);
}

/// CPU time (user + system, in clock ticks) the process has used so far.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// An idle pgvigil sleeps, in every durability mode, before and after it has written (the
/// periodic fsync's wait once spun on a deadline long past: a whole core while idle).
#[test]
fn an_idle_proxy_uses_no_cpu() {
    for durability in ["written", "queued", "synced"] {
        let proxy = Proxy::start(
            pg(),
            ProxyOptions {
                tls_mode: "disable",
                audit: format!("durability = \"{durability}\""),
                ..ProxyOptions::default()
            },
        );
        let (ok, _, err) = psql(
            &proxy.conninfo("app_user", "app_pass", "app", "sslmode=disable"),
            "select 1",
        );
        assert!(ok, "{err}");
        // Past the fsync interval, so the writer has synced and has nothing left to do.
        std::thread::sleep(Duration::from_millis(1500));
        let pid = proxy.pid().expect("running");
        let before = cpu_ticks(pid);
        std::thread::sleep(Duration::from_secs(3));
        let used = cpu_ticks(pid) - before;
        // 3 s are 300 ticks; a spinning thread takes most of them.
        assert!(
            used < 30,
            "{durability}: {used} ticks of CPU in 3 idle seconds"
        );
    }
}
