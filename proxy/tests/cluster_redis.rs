//! Two pgvigil processes sharing one real `redis-server` (`[cluster] redis_url`): a brute
//! force spread over both (3 failed logins on each) trips the block on both; one finding
//! for the episode; the block survives a restart of a replica; and with Redis stopped
//! mid-test no login is refused because of it, counting goes on locally, and the other
//! replica catches up once Redis is back.

mod common;

use common::{cluster, free_port, psql, wait_until, Proxy, ProxyOptions};
use pgvigil::demo::cluster::Cluster;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

fn pg() -> &'static Cluster {
    static PG: OnceLock<Cluster> = OnceLock::new();
    PG.get_or_init(cluster)
}

/// A throwaway redis-server (no persistence), killed on drop.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start(port: u16, dir: &Path) -> Redis {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (Debian package redis-server; .ci/run installs it)");
        wait_until("redis-server listening", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Redis { child, port }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

fn replica(redis_port: u16) -> Proxy {
    Proxy::start(
        pg(),
        ProxyOptions {
            extra: format!(
                "[rules]\nblock_loopback = true\n\n[cluster]\nredis_url = \"redis://127.0.0.1:{redis_port}\"\ncommand_timeout = \"300ms\"\n"
            ),
            ..ProxyOptions::default()
        },
    )
}

fn login(proxy: &Proxy, password: &str) -> (bool, String) {
    let (ok, _, err) = psql(
        &proxy.conninfo("scram_user", password, "postgres", "sslmode=disable"),
        "select 1",
    );
    (ok, err)
}

/// `n` failed logins on `proxy`, waiting until each is audited (and so counted).
fn fail(proxy: &Proxy, n: usize) {
    let before = failures(proxy);
    for _ in 0..n {
        let (ok, err) = login(proxy, "wrong");
        assert!(
            !ok && err.contains("password authentication failed"),
            "{err}"
        );
    }
    wait_until("auth failures audited", Duration::from_secs(10), || {
        failures(proxy) >= before + n
    });
}

fn failures(proxy: &Proxy) -> usize {
    proxy
        .audit_events()
        .iter()
        .filter(|e| e["type"] == "auth_failure" && e["sqlstate"] == "28P01")
        .count()
}

fn blocked(proxy: &Proxy) -> bool {
    let (ok, err) = login(proxy, "scram_pass");
    !ok && err.contains("too many failed authentication attempts")
}

/// Gives the other replica's stream reader time to see what was written.
fn settle() {
    std::thread::sleep(Duration::from_millis(1500));
}

#[test]
fn brute_force_spread_over_two_replicas_blocks_on_both_and_survives_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let redis = Redis::start(free_port(), dir.path());
    let a = replica(redis.port);
    let mut b = replica(redis.port);
    settle();
    fail(&a, 3);
    settle();
    fail(&b, 3);
    settle();
    // 6 > 5 across the two: both refuse the address, even with the right password.
    assert!(blocked(&b), "the replica that saw the 6th failure blocks");
    assert!(blocked(&a), "the other replica blocks too");
    // One episode, one finding, from whichever replica crossed the threshold.
    let fired = a.fired("failed-logins") + b.fired("failed-logins");
    assert_eq!(fired, 1.0, "exactly one replica fired");
    // A restarted replica gets the block back from Redis.
    b.kill_hard();
    b.restart();
    assert!(blocked(&b), "the block survives a restart:\n{}", b.log());
}

#[test]
fn redis_down_mid_test_never_refuses_a_login_and_catches_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut redis = Redis::start(port, dir.path());
    let a = replica(port);
    let b = replica(port);
    settle();
    let (ok, err) = login(&a, "scram_pass");
    assert!(ok, "{err}");
    redis.stop();
    // Redis is gone: logins go on at once on both replicas.
    for p in [&a, &b] {
        let started = std::time::Instant::now();
        let (ok, err) = login(p, "scram_pass");
        assert!(ok, "a login refused while Redis is down: {err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    // Counting goes on locally: 6 failures on one replica block it there.
    fail(&a, 6);
    assert!(blocked(&a), "local counting while Redis is down");
    wait_until(
        "the outage is in the metric",
        Duration::from_secs(10),
        || a.metrics().contains("pgvigil_cluster_redis_up 0"),
    );
    assert!(a.log().contains("Redis unreachable"), "{}", a.log());
    let (ok, err) = login(&b, "scram_pass");
    assert!(ok, "b never heard of the block: {err}");
    // Redis is back (empty: no persistence): a sends what it kept, b catches up.
    let _redis = Redis::start(port, dir.path());
    wait_until("b learns a's block", Duration::from_secs(30), || {
        blocked(&b)
    });
    wait_until("a's link is up again", Duration::from_secs(10), || {
        a.metrics().contains("pgvigil_cluster_redis_up 1")
    });
}

#[test]
fn a_redis_that_accepts_and_never_answers_holds_up_nothing() {
    // A black hole where Redis should be: connections are accepted and never answered.
    let hole = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = hole.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in hole.incoming().flatten() {
            held.push(conn);
        }
    });
    let a = replica(port);
    for _ in 0..3 {
        let started = std::time::Instant::now();
        let (ok, err) = login(&a, "scram_pass");
        assert!(ok, "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "a login waited on Redis"
        );
    }
    // Detection works locally and the finding is delivered without the dedup.
    fail(&a, 6);
    assert!(blocked(&a));
    let f = a.wait_finding("failed-logins", |_| true);
    assert_eq!(f["action"], "block");
    // The timed-out connects are counted (the gauge never went up).
    wait_until(
        "the failed connects counted",
        Duration::from_secs(15),
        || a.metric("pgvigil_cluster_redis_errors_total") >= 1.0,
    );
    assert_eq!(a.metric("pgvigil_cluster_redis_up"), 0.0);
}
