//! The pgbench part: initialising the data set, checking that every target answers, running
//! `pgbench -S` against one target, parsing its report, and the interleaved matrix of runs
//! (for each round, each cell, each target back to back).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Result};
use serde::Serialize;
use tempfile::TempDir;

use crate::procs::{self, check_interrupted};
use crate::targets::{APP_PASSWORD, APP_USER};

/// Database the benchmark runs in (owned by `app_user` in every `Cluster`).
const DB: &str = "app";
/// Slack over `-T` before a pgbench run counts as hung and is killed.
const RUN_SLACK: Duration = Duration::from_secs(60);
/// Longest `pgbench -i` may take.
const INIT_LIMIT: Duration = Duration::from_secs(600);

/// Whether both legs are plaintext or both TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// No TLS anywhere.
    Plain,
    /// TLS client to proxy and proxy to server (and client to server when direct).
    Tls,
}

impl Security {
    /// Name used in the table and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Security::Plain => "plain",
            Security::Tls => "tls",
        }
    }

    /// The libpq sslmode pgbench uses for this configuration.
    pub fn sslmode(self) -> &'static str {
        match self {
            Security::Plain => "disable",
            Security::Tls => "require",
        }
    }
}

/// pgbench's `-M`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// One Query message per statement.
    Simple,
    /// Parse/Bind/Execute/Sync per statement (unnamed statement).
    Extended,
}

impl Protocol {
    /// The `-M` argument.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Simple => "simple",
            Protocol::Extended => "extended",
        }
    }
}

/// What pgbench connects to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// The PostgreSQL server itself.
    Direct,
    /// pgvigil in front of it.
    Pgvigil,
    /// PgBouncer (session mode) in front of it.
    Pgbouncer,
}

impl TargetKind {
    /// Name used in the table and JSON.
    pub fn name(self) -> &'static str {
        match self {
            TargetKind::Direct => "direct",
            TargetKind::Pgvigil => "pgvigil",
            TargetKind::Pgbouncer => "pgbouncer",
        }
    }
}

/// One target's address in one configuration.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint {
    /// Which target.
    pub kind: TargetKind,
    /// Port on 127.0.0.1.
    pub port: u16,
    /// The proxy's process, whose CPU time is measured per run (`None` for direct).
    pub pid: Option<u32>,
}

/// One line of pgbench's report.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PgbenchStats {
    /// Transactions per second (without initial connection time).
    pub tps: f64,
    /// "latency average", milliseconds.
    pub latency_ms: f64,
    /// "initial connection time", milliseconds, when printed.
    pub connection_ms: Option<f64>,
    /// "number of transactions actually processed".
    pub transactions: Option<u64>,
    /// "number of failed transactions", when printed.
    pub failed: Option<u64>,
}

/// One pgbench run of the matrix, successful or not.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    /// 1-based round.
    pub round: u32,
    /// Plaintext or TLS.
    pub security: Security,
    /// `-c`.
    pub clients: u32,
    /// `-M`.
    pub protocol: Protocol,
    /// What was measured.
    pub target: TargetKind,
    /// The report, when pgbench succeeded.
    pub stats: Option<PgbenchStats>,
    /// What went wrong otherwise.
    pub error: Option<String>,
    /// CPU time (user + system, all threads) the proxy process used during the run,
    /// divided by the transactions pgbench counted, in microseconds.
    pub proxy_cpu_us_per_tx: Option<f64>,
    /// Times the proxy's threads were preempted (nonvoluntary context switches) during the
    /// run, per transaction: on a CPU-bound machine each one is a switch the proxy pays for.
    pub proxy_preempted_per_tx: Option<f64>,
}

/// Runs pgbench and psql against the targets.
#[derive(Debug)]
pub struct Pgbench {
    pgbench: PathBuf,
    psql: PathBuf,
    /// Holds the output files of each run.
    scratch: TempDir,
}

impl Pgbench {
    /// Uses the given pgbench and psql binaries.
    pub fn new(pgbench: PathBuf, psql: PathBuf) -> Result<Pgbench> {
        for (name, path) in [("pgbench", &pgbench), ("psql", &psql)] {
            if !path.is_file() {
                bail!(
                    "{name} not found at {}: install the PostgreSQL client tools \
                     (apt-get install postgresql-client, or postgresql-contrib on older releases)",
                    path.display()
                );
            }
        }
        let scratch = procs::scratch_dir("pgbench-")?;
        Ok(Pgbench {
            pgbench,
            psql,
            scratch,
        })
    }

    /// A client-tool command with a clean environment and the role's password.
    fn command(&self, program: &Path, sslmode: &str) -> Command {
        let mut cmd = Command::new(program);
        procs::clean_env(&mut cmd)
            .env("PGPASSWORD", APP_PASSWORD)
            .env("PGSSLMODE", sslmode)
            .env("PGCONNECT_TIMEOUT", "15")
            .env("LC_ALL", "C");
        cmd
    }

    /// `pgbench -i -s SCALE` as `app_user` on the server directly.
    pub fn init(&self, port: u16, scale: u32) -> Result<()> {
        let mut cmd = self.command(&self.pgbench, "disable");
        cmd.args(["-i", "-q", "-s", &scale.to_string()]);
        conn_args(&mut cmd, port);
        let done = procs::run_bounded(&mut cmd, self.scratch.path(), INIT_LIMIT)?;
        if !done.status.success() {
            bail!(
                "pgbench -i failed ({}):\n{}",
                done.status,
                done.stderr.trim()
            );
        }
        Ok(())
    }

    /// Logs in through `port` with psql and checks whether the server sees TLS on its
    /// connection (for a proxy: the upstream leg), failing when that differs from
    /// `security`.
    pub fn check(&self, endpoint: Endpoint, security: Security) -> Result<()> {
        let mut cmd = self.command(&self.psql, security.sslmode());
        cmd.args(["-X", "-A", "-t", "-c"]).arg(
            "select coalesce((select ssl from pg_stat_ssl where pid = pg_backend_pid()), false)",
        );
        conn_args_psql(&mut cmd, endpoint.port);
        let done = procs::run_bounded(&mut cmd, self.scratch.path(), Duration::from_secs(60))?;
        if !done.status.success() {
            bail!(
                "cannot log in through {} ({} configuration, port {}): {}",
                endpoint.kind.name(),
                security.name(),
                endpoint.port,
                done.stderr.trim()
            );
        }
        let server_tls = done.stdout.trim() == "t";
        if server_tls != (security == Security::Tls) {
            bail!(
                "through {} in the {} configuration the server sees ssl={}, expected the opposite",
                endpoint.kind.name(),
                security.name(),
                done.stdout.trim()
            );
        }
        Ok(())
    }

    /// One `pgbench -n -S` run; `Err` carries pgbench's complaint.
    pub fn run(
        &self,
        endpoint: Endpoint,
        security: Security,
        clients: u32,
        protocol: Protocol,
        secs: u64,
    ) -> Result<std::result::Result<PgbenchStats, String>> {
        let jobs = clients.clamp(1, 2);
        let mut cmd = self.command(&self.pgbench, security.sslmode());
        cmd.args(["-n", "-S", "-M", protocol.name()])
            .args(["-c", &clients.to_string(), "-j", &jobs.to_string()])
            .args(["-T", &secs.to_string()]);
        conn_args(&mut cmd, endpoint.port);
        let limit = Duration::from_secs(secs) + RUN_SLACK;
        let done = match procs::run_bounded(&mut cmd, self.scratch.path(), limit) {
            Ok(done) => done,
            Err(e) => {
                check_interrupted()?;
                return Ok(Err(format!("{e:#}")));
            }
        };
        if !done.status.success() {
            let mut msg = format!("pgbench exited ({})", done.status);
            for line in done.stderr.lines().filter(|l| !l.trim().is_empty()).take(5) {
                msg.push_str("\n  ");
                msg.push_str(line.trim());
            }
            return Ok(Err(msg));
        }
        Ok(parse_report(&done.stdout).map_err(|e| format!("{e}; stderr: {}", done.stderr.trim())))
    }
}

/// Host, port, user and database for pgbench (database positional).
fn conn_args(cmd: &mut Command, port: u16) {
    cmd.args([
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-U",
        APP_USER,
        DB,
    ]);
}

/// Host, port, user and database for psql.
fn conn_args_psql(cmd: &mut Command, port: u16) {
    cmd.args([
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-U",
        APP_USER,
        "-d",
        DB,
    ]);
}

/// The number after `prefix` on the first line that starts with it.
fn number_after(report: &str, prefix: &str) -> Option<f64> {
    report.lines().find_map(|line| {
        let rest = line.trim().strip_prefix(prefix)?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Reads tps, latency average and friends from pgbench's standard output.
pub fn parse_report(report: &str) -> std::result::Result<PgbenchStats, String> {
    let tps = number_after(report, "tps = ").ok_or("pgbench printed no `tps = ` line")?;
    let latency_ms = number_after(report, "latency average = ")
        .ok_or("pgbench printed no `latency average = ` line")?;
    let stats = PgbenchStats {
        tps,
        latency_ms,
        connection_ms: number_after(report, "initial connection time = "),
        transactions: number_after(report, "number of transactions actually processed:")
            .map(|n| n as u64),
        failed: number_after(report, "number of failed transactions:").map(|n| n as u64),
    };
    if stats.failed.is_some_and(|f| f > 0) {
        return Err(format!("{} transactions failed", stats.failed.unwrap_or(0)));
    }
    Ok(stats)
}

/// The shape of the matrix.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Repetitions of the whole set.
    pub rounds: u32,
    /// `-T` of every run.
    pub duration_secs: u64,
    /// `-c` values.
    pub clients: Vec<u32>,
    /// `-M` values.
    pub protocols: Vec<Protocol>,
}

impl Plan {
    /// How many pgbench runs the plan makes with `targets` targets per configuration.
    pub fn runs(&self, configs: usize, targets: usize) -> usize {
        self.rounds as usize * configs * self.clients.len() * self.protocols.len() * targets
    }
}

/// Runs every (round, configuration, clients, protocol, target), targets back to back within
/// a cell. `alive` is called before each run and fails the matrix when a proxy died.
pub fn run_matrix(
    bench: &Pgbench,
    plan: &Plan,
    configs: &[(Security, Vec<Endpoint>)],
    alive: &mut dyn FnMut() -> Result<()>,
) -> Result<Vec<RunRecord>> {
    let total = plan.runs(configs.len(), configs.first().map_or(0, |c| c.1.len()));
    let mut records = Vec::with_capacity(total);
    for round in 1..=plan.rounds {
        for (security, endpoints) in configs {
            for &clients in &plan.clients {
                for &protocol in &plan.protocols {
                    for endpoint in endpoints {
                        check_interrupted()?;
                        alive()?;
                        eprint!(
                            "[{:>3}/{total}] round {round} {:<5} c={clients:<2} {:<8} {:<9} ",
                            records.len() + 1,
                            security.name(),
                            protocol.name(),
                            endpoint.kind.name()
                        );
                        let cpu_before = endpoint.pid.and_then(cpu_secs);
                        let preempted_before = endpoint.pid.and_then(preemptions);
                        let outcome = bench.run(
                            *endpoint,
                            *security,
                            clients,
                            protocol,
                            plan.duration_secs,
                        )?;
                        match &outcome {
                            Ok(s) => eprintln!("{:>9.0} tps {:>7.3} ms", s.tps, s.latency_ms),
                            Err(e) => eprintln!("FAILED: {e}"),
                        }
                        let cpu = match (cpu_before, endpoint.pid.and_then(cpu_secs), &outcome) {
                            (Some(b), Some(a), Ok(s)) => s
                                .transactions
                                .filter(|n| *n > 0)
                                .map(|n| (a - b) * 1e6 / n as f64),
                            _ => None,
                        };
                        let preempted = match (
                            preempted_before,
                            endpoint.pid.and_then(preemptions),
                            &outcome,
                        ) {
                            (Some(b), Some(a), Ok(s)) => s
                                .transactions
                                .filter(|n| *n > 0)
                                .map(|n| a.saturating_sub(b) as f64 / n as f64),
                            _ => None,
                        };
                        let (stats, error) = match outcome {
                            Ok(s) => (Some(s), None),
                            Err(e) => (None, Some(e)),
                        };
                        records.push(RunRecord {
                            round,
                            security: *security,
                            clients,
                            protocol,
                            target: endpoint.kind,
                            stats,
                            error,
                            proxy_cpu_us_per_tx: cpu,
                            proxy_preempted_per_tx: preempted,
                        });
                    }
                }
            }
        }
    }
    Ok(records)
}

/// User + system CPU seconds a process has used so far (all threads), from
/// /proc/PID/stat.
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name: state is the first, utime the 12th.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (ticks > 0).then(|| (utime + stime) / ticks as f64)
}

/// Nonvoluntary context switches of all of a process's threads so far, from
/// /proc/PID/task/*/status (threads that ended meanwhile are not counted).
pub fn preemptions(pid: u32) -> Option<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = 0u64;
    for task in tasks.flatten() {
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        let n = status
            .lines()
            .find_map(|l| l.strip_prefix("nonvoluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        total = total.saturating_add(n);
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preemptions_of_this_process_are_readable() {
        let n = preemptions(std::process::id());
        assert!(
            n.is_some(),
            "/proc/self/task/*/status has nonvoluntary_ctxt_switches"
        );
        assert_eq!(preemptions(u32::MAX), None, "no such process");
    }

    const PG15_REPORT: &str = "pgbench (15.14 (Debian 15.14-0+deb12u1))\n\
transaction type: <builtin: select only>\n\
scaling factor: 10\n\
query mode: simple\n\
number of clients: 16\n\
number of threads: 2\n\
maximum number of tries: 1\n\
duration: 5 s\n\
number of transactions actually processed: 123456\n\
number of failed transactions: 0 (0.000%)\n\
latency average = 0.648 ms\n\
initial connection time = 21.345 ms\n\
tps = 24691.234567 (without initial connection time)\n";

    #[test]
    fn parses_pg15_report() {
        let s = parse_report(PG15_REPORT).expect("parses");
        assert_eq!(s.tps, 24691.234567);
        assert_eq!(s.latency_ms, 0.648);
        assert_eq!(s.connection_ms, Some(21.345));
        assert_eq!(s.transactions, Some(123456));
        assert_eq!(s.failed, Some(0));
    }

    #[test]
    fn reads_own_cpu_time() {
        let spin = std::time::Instant::now();
        while spin.elapsed() < Duration::from_millis(30) {}
        assert!(cpu_secs(std::process::id()).is_some_and(|s| s > 0.0));
    }

    #[test]
    fn failed_transactions_are_an_error() {
        let report = PG15_REPORT.replace(
            "failed transactions: 0 (0.000%)",
            "failed transactions: 3 (0.1%)",
        );
        assert!(parse_report(&report).is_err());
        assert!(parse_report("nothing").is_err());
    }
}
