//! The login password does not outlive the handshake in pgvigil's memory: a core dump
//! (gcore) taken during the session holds no copy of it, whichever buffer it passed
//! through (the read buffer, the parsed copy, the message sent upstream).

mod common;

use common::*;
use pgvigil::demo::cluster::HbaAuth;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn a_core_dump_during_the_session_holds_no_password() {
    // Cleartext upstream (the server asks for the password itself): every copy pgvigil
    // makes is its own, none is hidden inside a library's SCRAM state.
    let pg = cluster_with(false, HbaAuth::Password);
    // Long, so that a freed buffer whose first bytes the allocator overwrote still shows
    // the rest: any 12 bytes of it in the dump count as a copy.
    let secret = format!("Wipe{:016x}{:016x}Me", rand_u64(), rand_u64() ^ 0x5a5a);
    pg.psql(
        "postgres",
        "postgres",
        &format!("create role wipe_user login password '{secret}'"),
    )
    .expect("role");
    let proxy = Proxy::start(
        &pg,
        ProxyOptions {
            tls_mode: "disable",
            ..ProxyOptions::default()
        },
    );
    // A session that stays open while the dump is taken.
    let mut session = Command::new("psql")
        .args(["-X", "-w", "-d"])
        .arg(proxy.conninfo(
            "wipe_user",
            &secret,
            "postgres",
            "sslmode=disable application_name=wipe",
        ))
        .args(["-c", "select pg_sleep(3)"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("psql");
    proxy.wait_event("the session", |e| {
        e["type"] == "session_start" && e["application_name"] == "wipe"
    });
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("core");
    let pid = proxy.pid().expect("running");
    let ok = Command::new("gcore")
        .arg("-o")
        .arg(&prefix)
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "gcore failed (install gdb)");
    let core = std::fs::read(dir.path().join(format!("core.{pid}"))).expect("core file");
    assert!(core.len() > 1 << 20, "core file too small: {}", core.len());
    // Searched as text: the standard library's substring search is fast even in a debug
    // build, and the ASCII secret survives the lossy conversion intact.
    let text = String::from_utf8_lossy(&core);
    // The dump is of the right process: the session's user name is in it.
    assert!(
        text.contains("wipe_user"),
        "the dump does not hold the session"
    );
    for i in 0..=secret.len() - 12 {
        let piece = &secret[i..i + 12];
        assert!(
            !text.contains(piece),
            "part of the login password ({piece:?}) is still in pgvigil's memory"
        );
    }
    let _ = session.wait();
    std::thread::sleep(Duration::from_millis(10));
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id() as u64);
    h.finish()
}
