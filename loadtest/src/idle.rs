//! The memory phase: N idle, authenticated client connections held open through pgvigil,
//! and what they cost in pgvigil's resident set (VmRSS from /proc/PID/status).
//!
//! It has its own cluster (trust authentication, so N logins do not cost N SCRAM key
//! derivations; `max_connections` = N + 50) and its own pgvigil (`password` auth mode),
//! once for each pair of legs ([`Legs`]): plaintext both ways, TLS to the server only, TLS
//! both ways. The client is [`crate::idle_client`].

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use pgvigil::demo::cluster::{Cluster, ClusterOptions, HbaAuth};
use serde::Serialize;

use crate::idle_client::{open_many, ClientLeg};
use crate::procs::{self, check_interrupted};
use crate::targets::{Pgvigil, PgvigilOptions};

/// Which legs of a session are TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Legs {
    /// Plaintext client, plaintext server.
    Plain,
    /// Plaintext client, TLS to the server (the common deployment on one host or VPC).
    TlsUpstream,
    /// TLS on both legs.
    TlsBoth,
}

impl Legs {
    pub const ALL: [Legs; 3] = [Legs::Plain, Legs::TlsUpstream, Legs::TlsBoth];

    pub fn name(self) -> &'static str {
        match self {
            Legs::Plain => "plaintext both legs",
            Legs::TlsUpstream => "plaintext client, TLS upstream",
            Legs::TlsBoth => "TLS both legs",
        }
    }
}

/// Connections opened and closed before the baseline is read, so one-time allocations
/// (worker threads, pools, lazily built state) are not charged to the idle connections.
const WARMUP: usize = 16;
/// File descriptors kept free for everything else in a process.
const FD_RESERVE: u64 = 256;
/// Private memory of one idle PostgreSQL backend, rounded up (about 1.3 MiB measured on
/// PostgreSQL 15), for the up-front check.
const BACKEND_ESTIMATE_KIB: u64 = 2 * 1024;
/// How long pgvigil gets to release closed sessions.
const SETTLE_LIMIT: Duration = Duration::from_secs(60);

/// What the memory phase measured.
#[derive(Debug, Clone, Serialize)]
pub struct IdleReport {
    /// Which legs were TLS.
    pub legs: Legs,
    /// `--idle N`.
    pub requested: usize,
    /// Connections actually held open while measuring.
    pub opened: usize,
    /// Why fewer than requested were opened, if so.
    pub limited_by: Option<String>,
    /// Seconds to open them all.
    pub connect_secs: f64,
    /// pgvigil's VmRSS after warm-up, before the idle connections (KiB).
    pub rss_before_kib: u64,
    /// pgvigil's VmRSS with all connections idle (KiB).
    pub rss_idle_kib: u64,
    /// pgvigil's VmRSS after each close of all connections (KiB), one per cycle.
    pub rss_after_close_kib: Vec<u64>,
    /// pgvigil's VmRSS with the same number of connections opened again, for cycles 2 and
    /// on (KiB): flat when freed memory is reused, rising when sessions leak.
    pub rss_idle_reopened_kib: Vec<u64>,
    /// pgvigil's VmHWM (peak RSS) at the end (KiB).
    pub rss_peak_kib: Option<u64>,
    /// (rss_idle - rss_before) / opened.
    pub per_connection_kib: f64,
    /// pgvigil's open file descriptors while the connections were idle.
    pub pgvigil_fds_idle: Option<usize>,
    /// WARN/ERROR lines of this pgvigil's log.
    pub pgvigil_log_problems: Vec<String>,
    /// Drop in the system's MemAvailable while the connections were open (MiB), i.e. mostly
    /// the PostgreSQL backends.
    pub system_mem_used_mib: Option<u64>,
}

/// Runs the memory phase with up to `requested` connections through the pgvigil `bin`,
/// opened and closed `cycles` times.
pub fn run(
    bin: &Path,
    requested: usize,
    cycles: u32,
    fd_limit: u64,
    legs: Legs,
) -> Result<IdleReport> {
    let mut n = requested;
    let mut limited_by = None;
    let by_fds = (fd_limit.saturating_sub(FD_RESERVE) / 2) as usize;
    if n > by_fds {
        let why = format!(
            "file descriptor limit {fd_limit} (pgvigil needs two per connection; raise the hard \
             `ulimit -n`)"
        );
        eprintln!("idle: capping {n} connections to {by_fds}: {why}");
        n = by_fds;
        limited_by = Some(why);
    }
    if let Some(avail) = mem_available_kib() {
        let by_mem = (avail * 8 / 10 / BACKEND_ESTIMATE_KIB) as usize;
        if n > by_mem {
            let why = format!(
                "memory: {} MiB available, about {} MiB per PostgreSQL backend",
                avail / 1024,
                BACKEND_ESTIMATE_KIB / 1024
            );
            eprintln!("idle: capping {n} connections to {by_mem}: {why}");
            n = by_mem;
            limited_by = Some(why);
        }
    }
    eprintln!(
        "idle: starting a PostgreSQL cluster with max_connections = {}",
        n + 50
    );
    let cluster = Cluster::start(ClusterOptions {
        tls: legs != Legs::Plain,
        auth: HbaAuth::Trust,
        max_connections: u32::try_from(n + 50).context("--idle is too large")?,
        ..ClusterOptions::default()
    })
    .context("cannot start the PostgreSQL cluster for the idle-connection test")?;
    let mut proxy = Pgvigil::start(
        bin,
        &PgvigilOptions {
            tls_mode: if legs == Legs::TlsBoth {
                "require"
            } else {
                "disable"
            },
            upstream_sslmode: if legs == Legs::Plain {
                "disable"
            } else {
                "verify-full"
            },
            upstream_port: cluster.port(),
            upstream_ca: cluster.ca_cert().map(Path::to_path_buf),
            max_client_conn: n + 100,
            durability: "written",
        },
    )
    .context("cannot start pgvigil for the idle-connection test")?;
    let pid = proxy.pid().context("pgvigil has no pid")?;
    let port = proxy.port;
    let leg = match legs {
        Legs::TlsBoth => ClientLeg::tls(&proxy.ca_cert())?,
        _ => ClientLeg::Plain,
    };

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;

    // Warm-up, then the baseline once pgvigil has let go of the warm-up sessions.
    let base_fds = fd_count(pid).unwrap_or(0);
    let (warm, warm_err) = rt.block_on(open_many(port, WARMUP, &leg));
    if let Some(e) = warm_err {
        bail!(
            "cannot log in through pgvigil: {e}\npgvigil's output:\n{}",
            tail(&proxy.log())
        );
    }
    drop(warm);
    wait_fds_at_most(pid, base_fds, SETTLE_LIMIT);
    let rss_before = status_kib(pid, "VmRSS").context("cannot read pgvigil's VmRSS")?;
    let mem_before = mem_available_kib();

    eprintln!("idle: opening {n} connections through pgvigil (pid {pid}, RSS {rss_before} KiB)");
    let started = Instant::now();
    let (conns, err) = rt.block_on(open_many(port, n, &leg));
    let connect_secs = started.elapsed().as_secs_f64();
    check_interrupted()?;
    proxy.check_alive()?;
    let opened = conns.len();
    if let Some(e) = err {
        let why = format!("a login failed after {opened} connections: {e}");
        eprintln!("idle: {why}; measuring with {opened}");
        limited_by = Some(why);
    }
    if opened == 0 {
        bail!(
            "no idle connection could be opened; pgvigil's output:\n{}",
            tail(&proxy.log())
        );
    }
    // Each client got ReadyForQuery, so pgvigil holds both sockets; wait for RSS to settle.
    let rss_idle = settled_rss(pid).context("cannot read pgvigil's VmRSS")?;
    let fds_idle = fd_count(pid);
    let mem_used = match (mem_before, mem_available_kib()) {
        (Some(b), Some(a)) => Some(b.saturating_sub(a) / 1024),
        _ => None,
    };
    eprintln!(
        "idle: {opened} connections open in {connect_secs:.1}s; pgvigil RSS {rss_idle} KiB, {} fds",
        fds_idle.map_or("?".to_owned(), |f| f.to_string())
    );

    // Close and reopen the same number `cycles - 1` more times: memory kept after closing
    // that is reused on reopening is allocator retention; memory that keeps growing leaks.
    drop(conns);
    let mut rss_closed = Vec::new();
    let mut rss_reopened = Vec::new();
    for cycle in 1..=cycles {
        if !wait_fds_at_most(pid, base_fds, SETTLE_LIMIT) {
            eprintln!("idle: pgvigil did not close its sessions within {SETTLE_LIMIT:?}");
            break;
        }
        rss_closed.push(status_kib(pid, "VmRSS").context("cannot read pgvigil's VmRSS")?);
        if cycle == cycles {
            break;
        }
        let (again, err) = rt.block_on(open_many(port, opened, &leg));
        check_interrupted()?;
        if let Some(e) = err {
            eprintln!(
                "idle: reopening failed after {} connections: {e}",
                again.len()
            );
            break;
        }
        let rss = settled_rss(pid).context("cannot read pgvigil's VmRSS")?;
        eprintln!(
            "idle: cycle {}: {opened} connections open again; pgvigil RSS {rss} KiB",
            cycle + 1
        );
        rss_reopened.push(rss);
    }
    let rss_peak = status_kib(pid, "VmHWM");
    proxy.check_alive()?;
    let pgvigil_log_problems = crate::report::log_problems(&proxy.log(), "pgvigil (idle)");
    drop(proxy);
    drop(cluster);
    Ok(IdleReport {
        legs,
        requested,
        opened,
        limited_by,
        connect_secs,
        rss_before_kib: rss_before,
        rss_idle_kib: rss_idle,
        rss_after_close_kib: rss_closed,
        rss_idle_reopened_kib: rss_reopened,
        rss_peak_kib: rss_peak,
        per_connection_kib: rss_idle.saturating_sub(rss_before) as f64 / opened as f64,
        pgvigil_fds_idle: fds_idle,
        system_mem_used_mib: mem_used,
        pgvigil_log_problems,
    })
}

/// The last lines of a log text.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// A `Vm*:` field of /proc/PID/status in KiB.
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// MemAvailable from /proc/meminfo in KiB.
fn mem_available_kib() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    text.lines().find_map(|l| {
        l.strip_prefix("MemAvailable:")?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}

/// Open file descriptors of a process.
fn fd_count(pid: u32) -> Option<usize> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(|d| d.count())
}

/// Waits (bounded) until the process has at most `fds` descriptors; whether it got there.
fn wait_fds_at_most(pid: u32, fds: usize, limit: Duration) -> bool {
    let started = Instant::now();
    loop {
        match fd_count(pid) {
            Some(n) if n <= fds => return true,
            None => return false,
            _ => {}
        }
        if started.elapsed() > limit || procs::interrupted() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// VmRSS once three readings 100 ms apart agree within 1% (at most 5 s).
fn settled_rss(pid: u32) -> Option<u64> {
    let started = Instant::now();
    let mut last = status_kib(pid, "VmRSS")?;
    let mut same = 0;
    while same < 2 && started.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(100));
        let now = status_kib(pid, "VmRSS")?;
        if now.abs_diff(last) * 100 <= last {
            same += 1;
        } else {
            same = 0;
        }
        last = now;
    }
    Some(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_status() {
        assert!(status_kib(std::process::id(), "VmRSS").is_some_and(|k| k > 0));
    }
}
