//! `pgvigil-loadtest`: measures pgvigil's throughput and latency cost with pgbench against
//! the same PostgreSQL server directly and through PgBouncer, and its memory per idle
//! connection.
//!
//! ```text
//! cargo run --release -p pgvigil-loadtest -- [--duration SECS] [--quick] [--rounds N]
//!     [--idle N] [--idle-cycles K] [--out FILE] [--pgvigil PATH] [--no-build] [--no-bench]
//! ```
//!
//! Phases, in one run:
//! 1. Throughput: one throwaway cluster (TLS available, SCRAM for `app_user`),
//!    `pgbench -i -s 10` directly, then `pgbench -S` at 1 and 16 clients, simple and
//!    extended protocol, in a plaintext and a TLS configuration, against direct, pgvigil
//!    and PgBouncer back to back per cell, repeated `--rounds` times; medians are reported.
//! 2. Memory: `--idle N` idle connections through pgvigil on a second cluster, with
//!    pgvigil's VmRSS before and after.
//!
//! Modules: `procs` (child processes, limits, signals), `targets` (pgvigil and PgBouncer
//! instances), `bench` (pgbench), `idle` (memory phase), `report` (table and JSON).

mod bench;
mod idle;
mod idle_client;
mod procs;
mod report;
mod targets;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use pgvigil::demo::cluster::{Cluster, ClusterOptions, HbaAuth, SUPERUSER};

use bench::{Endpoint, Pgbench, Plan, Protocol, RunRecord, Security, TargetKind};
use idle::IdleReport;
use targets::{Pgbouncer, Pgvigil, PgvigilOptions};

/// Command-line options.
#[derive(Debug, Parser)]
#[command(
    name = "pgvigil-loadtest",
    about = "pgbench through pgvigil vs. direct vs. PgBouncer, and pgvigil's memory per idle connection"
)]
struct Cli {
    /// Seconds per pgbench run (default 15, or 5 with --quick).
    #[arg(long)]
    duration: Option<u64>,
    /// Short runs (5 s each) for a quick look.
    #[arg(long)]
    quick: bool,
    /// Repetitions of the whole matrix; the table shows medians.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
    /// Idle connections to hold open through pgvigil for the memory test (0 skips it).
    #[arg(long, default_value_t = 5000)]
    idle: usize,
    /// How many times the idle connections are opened and closed (shows whether memory
    /// kept after closing is reused or leaked).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    idle_cycles: u32,
    /// Where to write the results as JSON.
    #[arg(long)]
    out: Option<PathBuf>,
    /// The pgvigil binary (default: target/release/pgvigil, built first).
    #[arg(long)]
    pgvigil: Option<PathBuf>,
    /// Do not run `cargo build --release -p pgvigil` first.
    #[arg(long)]
    no_build: bool,
    /// Skip the pgbench phase (only the idle-connection test).
    #[arg(long)]
    no_bench: bool,
    /// pgvigil's `[audit] durability` for the pgbench phase: queued, written or synced.
    #[arg(long, default_value = "written", value_parser = ["queued", "written", "synced"])]
    durability: String,
    /// pgbench scale factor for `pgbench -i`.
    #[arg(long, default_value_t = 10)]
    scale: u32,
    /// Client counts to run (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [1u32, 16])]
    clients: Vec<u32>,
    /// Protocols to run: simple, extended (comma-separated).
    #[arg(long, value_delimiter = ',', default_values = ["simple", "extended"], value_parser = ["simple", "extended"])]
    protocols: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("pgvigil-loadtest: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// The whole run; `Ok(false)` when some measurement failed.
fn run(cli: &Cli) -> Result<bool> {
    procs::install_signal_handlers()?;
    // Declared before every child and directory of the run, so dropped last.
    let _run_dir = procs::RunDir::create()?;
    let duration = cli.duration.unwrap_or(if cli.quick { 5 } else { 15 });
    let wanted_fds = (cli.idle as u64 * 2 + 1024).max(4096);
    let fd_limit = procs::raise_nofile_limit(wanted_fds)?;
    let bin = procs::pgvigil_binary(cli.pgvigil.as_deref(), !cli.no_build)?;
    let out = cli.out.clone().unwrap_or_else(|| {
        procs::workspace_root()
            .join("loadtest")
            .join("results.json")
    });
    let mut problems = Vec::new();
    let mut meta = serde_json::json!({
        "pgvigil": bin.display().to_string(),
        "pgvigil_version": procs::version_of(&bin),
        "duration_secs": duration,
        "rounds": cli.rounds,
        "scale": cli.scale,
        "durability": cli.durability,
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "unix_time": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        "nofile_limit": fd_limit,
        "git_head": git(&["rev-parse", "HEAD"]),
        "proxy_changes_uncommitted": !git(&["status", "--porcelain", "--", "proxy"]).is_empty(),
    });

    let (records, summary) = if cli.no_bench {
        (Vec::new(), Vec::new())
    } else {
        let records = bench_phase(cli, duration, &bin, &mut meta, &mut problems)?;
        let summary = report::summarize(&records);
        println!();
        println!(
            "pgbench -S, scale {}, {duration} s per run, median of {} round(s):",
            cli.scale, cli.rounds
        );
        print!("{}", report::table(&summary));
        println!();
        print!("{}", report::ratio_overview(&summary));
        (records, summary)
    };

    let mut idle_reports: Vec<IdleReport> = Vec::new();
    if cli.idle > 0 {
        for legs in idle::Legs::ALL {
            procs::check_interrupted()?;
            eprintln!(
                "\n== idle connections: {} through pgvigil, {} ==",
                cli.idle,
                legs.name()
            );
            let r = idle::run(&bin, cli.idle, cli.idle_cycles, fd_limit, legs)?;
            problems.extend(r.pgvigil_log_problems.iter().cloned());
            println!();
            print!("{}", report::idle_text(&r));
            idle_reports.push(r);
        }
    }

    for r in records.iter().filter(|r| r.error.is_some()) {
        problems.push(format!(
            "round {} {} c={} {} {}: {}",
            r.round,
            r.security.name(),
            r.clients,
            r.protocol.name(),
            r.target.name(),
            r.error.as_deref().unwrap_or("")
        ));
    }
    if !problems.is_empty() {
        println!("\nproblems:");
        for p in &problems {
            println!("  - {p}");
        }
    }
    report::write_json(
        &out,
        &report::Results {
            meta,
            runs: &records,
            summary: &summary,
            idle: &idle_reports,
            problems: &problems,
        },
    )?;
    println!("\nresults written to {}", out.display());
    Ok(records.iter().all(|r| r.error.is_none()))
}

/// The 1-minute load average.
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Output of a git command in the workspace (empty when git is unavailable).
fn git(args: &[&str]) -> String {
    std::process::Command::new("git")
        .args(args)
        .current_dir(procs::workspace_root())
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// The proxies of the throughput phase, one per configuration.
struct Fleet {
    vigil: Vec<Pgvigil>,
    bouncer: Vec<Pgbouncer>,
}

impl Fleet {
    fn check_alive(&mut self) -> Result<()> {
        for p in &mut self.vigil {
            p.check_alive()?;
        }
        for b in &mut self.bouncer {
            b.check_alive()?;
        }
        Ok(())
    }
}

/// Phase 1: cluster, data, proxies, checks, the pgbench matrix. Returns every run.
fn bench_phase(
    cli: &Cli,
    duration: u64,
    bin: &Path,
    meta: &mut serde_json::Value,
    problems: &mut Vec<String>,
) -> Result<Vec<RunRecord>> {
    eprintln!("== throughput: starting a PostgreSQL cluster (TLS on, scram-sha-256) ==");
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if let Some(load) = load_average() {
        meta["load_average_at_start"] = load.into();
        if load > cpus as f64 {
            eprintln!(
                "warning: the load average is {load:.1} on {cpus} CPUs: something else is running, \
                 so the numbers will be noisy"
            );
        }
    }
    let cluster = Cluster::start(ClusterOptions {
        tls: true,
        auth: HbaAuth::ScramSha256,
        max_connections: 200,
        ..ClusterOptions::default()
    })
    .context("cannot start the PostgreSQL cluster")?;
    let bench = Pgbench::new(cluster.bin("pgbench"), cluster.bin("psql"))?;
    meta["server_version"] = cluster
        .psql(SUPERUSER, "postgres", "show server_version")
        .map(|v| v.trim().to_owned())
        .unwrap_or_default()
        .into();
    meta["pgbench"] = procs::version_of(&cluster.bin("pgbench")).into();
    eprintln!("pgbench -i -s {} (directly, as app_user)", cli.scale);
    bench.init(cluster.port(), cli.scale)?;
    procs::check_interrupted()?;

    let ca = cluster.ca_cert().map(Path::to_path_buf);
    let mut fleet = Fleet {
        vigil: Vec::new(),
        bouncer: Vec::new(),
    };
    let pgbouncer = procs::find_pgbouncer();
    let mut configs = Vec::new();
    for security in [Security::Plain, Security::Tls] {
        let (tls_mode, upstream) = match security {
            Security::Plain => ("disable", "disable"),
            Security::Tls => ("require", "require"),
        };
        let vigil = Pgvigil::start(
            bin,
            &PgvigilOptions {
                tls_mode,
                upstream_sslmode: upstream,
                upstream_port: cluster.port(),
                upstream_ca: ca.clone(),
                max_client_conn: 1000,
                durability: match cli.durability.as_str() {
                    "queued" => "queued",
                    "synced" => "synced",
                    _ => "written",
                },
            },
        )
        .with_context(|| format!("cannot start pgvigil ({} configuration)", security.name()))?;
        let mut endpoints = vec![
            Endpoint {
                kind: TargetKind::Direct,
                port: cluster.port(),
                pid: None,
            },
            Endpoint {
                kind: TargetKind::Pgvigil,
                port: vigil.port,
                pid: vigil.pid(),
            },
        ];
        fleet.vigil.push(vigil);
        if let Some(pgb) = &pgbouncer {
            let b = Pgbouncer::start(pgb, cluster.port(), security == Security::Tls).with_context(
                || format!("cannot start PgBouncer ({} configuration)", security.name()),
            )?;
            endpoints.push(Endpoint {
                kind: TargetKind::Pgbouncer,
                port: b.port,
                pid: b.pid(),
            });
            fleet.bouncer.push(b);
        }
        configs.push((security, endpoints));
    }
    match &pgbouncer {
        Some(p) => meta["pgbouncer"] = procs::version_of(p).into(),
        None => eprintln!(
            "PgBouncer not found (/usr/sbin/pgbouncer, PATH or $PGBOUNCER): the PgBouncer column \
             is skipped. Install it with `apt-get install pgbouncer` to compare against it."
        ),
    }
    for (security, endpoints) in &configs {
        for e in endpoints {
            bench.check(*e, *security)?;
        }
    }
    let plan = Plan {
        rounds: cli.rounds,
        duration_secs: duration,
        clients: cli.clients.clone(),
        protocols: cli
            .protocols
            .iter()
            .map(|p| match p.as_str() {
                "extended" => Protocol::Extended,
                _ => Protocol::Simple,
            })
            .collect(),
    };
    let per_config = configs.first().map_or(0, |c| c.1.len());
    let runs = plan.runs(configs.len(), per_config);
    eprintln!(
        "running {runs} pgbench runs of {duration} s (about {} min)",
        (runs as u64 * (duration + 1)).div_ceil(60)
    );
    meta["plan"] = serde_json::json!({
        "clients": plan.clients,
        "protocols": plan.protocols,
        "jobs": "1 for 1 client, 2 otherwise",
    });
    let records = bench::run_matrix(&bench, &plan, &configs, &mut || fleet.check_alive())?;
    if let Some(load) = load_average() {
        meta["load_average_at_end"] = load.into();
    }
    for (p, security) in fleet.vigil.iter().zip([Security::Plain, Security::Tls]) {
        problems.extend(report::log_problems(
            &p.log(),
            &format!("pgvigil ({})", security.name()),
        ));
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_warnings_in_coloured_logs() {
        let log = "2026-01-01T00:00:00Z \u{1b}[33m WARN\u{1b}[0m pgvigil: slow\nINFO fine\n";
        let p = report::log_problems(log, "pgvigil");
        assert_eq!(p.len(), 1);
        assert!(p[0].contains("WARN pgvigil: slow"));
    }

    #[test]
    fn cli_defaults() {
        let cli = Cli::parse_from(["x"]);
        assert_eq!(cli.rounds, 2);
        assert_eq!(cli.idle, 5000);
        assert!(cli.duration.is_none());
    }
}
