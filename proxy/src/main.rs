//! The `pgvigil` command: `run`, `check`, `certs`, `demo`, `classify`, `tail`.

use clap::{Parser, Subcommand};
use pgvigil::audit::{AuditWriter, WriterOptions};
use pgvigil::detect::Detector;
use pgvigil::frontend::threads::SessionThreads;
use pgvigil::frontend::{listener, Shared};
use pgvigil::sinks::deliver::Alerting;
use pgvigil::sinks::outbox::OutboxWriter;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "pgvigil",
    version,
    about = "PostgreSQL wire-protocol audit proxy"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy.
    Run {
        /// Configuration file.
        #[arg(long, env = "PGVIGIL_CONFIG")]
        config: PathBuf,
    },
    /// Validate a configuration file and the rules it loads, or single rule files: exit
    /// 0, or print each error with its file and line.
    Check {
        #[arg(long, env = "PGVIGIL_CONFIG", required_unless_present = "rule")]
        config: Option<PathBuf>,
        /// A rule file to check on its own (repeatable).
        #[arg(long)]
        rule: Vec<PathBuf>,
    },
    /// Write a development CA, a server certificate and a client certificate (PEM).
    Certs {
        /// Folder to write into (created if missing); `certs/`, whose keys git ignores.
        #[arg(long, default_value = "certs")]
        out: PathBuf,
        /// Host names and addresses for the server certificate (default: localhost, 127.0.0.1).
        #[arg(long = "host")]
        hosts: Vec<String>,
        /// The client certificate's CN (the user name it authenticates).
        #[arg(long, default_value = "postgres")]
        client_user: String,
        /// Also write the CA for `[auth.upstream_cert]` (upstream-client-ca.crt/.key).
        #[arg(long)]
        upstream_client_ca: bool,
    },
    /// Start a throwaway PostgreSQL with pgvigil in front of it, and show how to connect.
    Demo,
    /// Ask a running pgvigil (at the config's `[metrics] listen`) whether it is healthy, or
    /// with --ready whether its upstream is reachable: exit 0 or 1 (container HEALTHCHECK).
    Health {
        #[arg(long, env = "PGVIGIL_CONFIG")]
        config: PathBuf,
        /// Ask /readyz instead of /healthz.
        #[arg(long)]
        ready: bool,
    },
    /// Classify SQL as the audit log would (one JSON line per statement): class, command,
    /// objects, functions, noise, the redacted statement, and which parser path was taken.
    Classify {
        /// The SQL; read from standard input when absent.
        sql: Option<String>,
        /// Redaction: `passwords` (default) or `literals`.
        #[arg(long, default_value = "passwords")]
        redact: String,
    },
    /// Show the audit log or the findings file as a person reads them: one line per event,
    /// coloured on a terminal.
    Tail {
        /// The JSON audit log or findings file (standard input when absent or `-`).
        file: Option<PathBuf>,
        /// Keep reading what is appended (and follow the file across rotation).
        #[arg(long, short = 'f')]
        follow: bool,
    },
}

/// `pgvigil check`.
fn check(config: Option<PathBuf>, rules: &[PathBuf]) -> ExitCode {
    let mut ok = true;
    if let Some(config) = config {
        match pgvigil::snapshot::load(&config) {
            Ok(c) => println!(
                "{}: OK ({} detection rules: {})",
                config.display(),
                c.rules.len(),
                c.rules
                    .iter()
                    .map(|r| r.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Err(e) => {
                eprintln!("{e}");
                ok = false;
            }
        }
    }
    for path in rules {
        let result = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))
            .and_then(|text| {
                pgvigil::detect::load::parse_rule(&text, path).map_err(|issues| {
                    issues
                        .iter()
                        .map(|i| {
                            let line = i.line.map(|l| format!("line {l}: ")).unwrap_or_default();
                            let key = if i.key.is_empty() {
                                String::new()
                            } else {
                                format!("{}: ", i.key)
                            };
                            format!("{}: {line}{key}{}", i.file.display(), i.message)
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                })
            });
        match result {
            Ok(r) => println!("{}: OK (rule {})", path.display(), r.id),
            Err(e) => {
                eprintln!("{e}");
                ok = false;
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `pgvigil health`.
fn health(config: &std::path::Path, ready: bool) -> ExitCode {
    let result = pgvigil::snapshot::load(config)
        .map_err(|e| e.to_string())
        .and_then(|c| {
            let addr = c.file.metrics.listen.ok_or("[metrics] listen is not set")?;
            let path = if ready { "/readyz" } else { "/healthz" };
            pgvigil::metrics::health::check(addr, path)
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pgvigil health: {e}");
            ExitCode::from(1)
        }
    }
}

/// `pgvigil classify`.
fn classify(sql: Option<String>, redact: &str) -> ExitCode {
    use pgvigil::sql::{Classifier, ClassifierOptions, Redact};
    let redact = match redact {
        "passwords" => Redact::Passwords,
        "literals" => Redact::Literals,
        other => {
            eprintln!("pgvigil classify: --redact {other:?}: use \"passwords\" or \"literals\"");
            return ExitCode::from(2);
        }
    };
    let sql = match sql {
        Some(s) => s,
        None => {
            let mut s = String::new();
            if let Err(e) = std::io::Read::read_to_string(&mut std::io::stdin(), &mut s) {
                eprintln!("pgvigil classify: cannot read standard input: {e}");
                return ExitCode::from(1);
            }
            s
        }
    };
    let classifier = Classifier::new(ClassifierOptions {
        redact,
        ..ClassifierOptions::default()
    });
    for st in classifier.classify_query(&sql) {
        let c = &st.class;
        let line = serde_json::json!({
            "class": c.class,
            "command": c.command,
            "objects": c.objects,
            "functions": c.functions,
            "noise": c.noise,
            "statement": &*st.text,
            "parse": c.parse,
            // What rules can match on beyond class and command.
            "facts": {
                "has_where": c.facts.has_where,
                "copy_direction": c.facts.copy_direction,
                "copy_program": c.facts.copy_program,
                "role_attributes": c.facts.role_attributes,
                "grants_role": c.facts.grants_role,
            },
        });
        println!("{line}");
    }
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match cli.command {
        Command::Check { config, rule } => check(config, &rule),
        Command::Certs {
            out,
            hosts,
            client_user,
            upstream_client_ca,
        } => match pgvigil::certs::write_dev_certs(&out, &hosts, &client_user) {
            Ok(c) => {
                println!("{}", c.summary());
                if upstream_client_ca {
                    match pgvigil::certs::write_upstream_client_ca(&out) {
                        Ok((crt, key)) => println!(
                            "upstream client CA  {}\nupstream client key {}\n(PostgreSQL: ssl_ca_file = the CA certificate; pgvigil: [auth.upstream_cert])",
                            crt.display(),
                            key.display()
                        ),
                        Err(e) => {
                            eprintln!("pgvigil certs: {e}");
                            return ExitCode::from(1);
                        }
                    }
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("pgvigil certs: {e}");
                ExitCode::from(1)
            }
        },
        Command::Classify { sql, redact } => classify(sql, &redact),
        Command::Tail { file, follow } => {
            let style = pgvigil::tail::Style::for_stdout();
            match pgvigil::tail::run(file.as_deref(), follow, style) {
                Ok(()) => ExitCode::SUCCESS,
                // A closed pipe (`| head`) is a normal end.
                Err(pgvigil::tail::TailError::Write(e))
                    if e.kind() == std::io::ErrorKind::BrokenPipe =>
                {
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("pgvigil tail: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Health { config, ready } => health(&config, ready),
        Command::Demo => {
            match runtime_then(|| async {
                pgvigil::demo::run_demo().await.map_err(|e| e.to_string())
            }) {
                Ok(()) => ExitCode::SUCCESS,
                Err(code) => code,
            }
        }
        Command::Run { config } => match runtime_then(|| run(config)) {
            Ok((writer, outbox)) => {
                // The runtime is gone, and with it every task's audit sink: the writer can
                // drain what is queued and sync, without waiting on a stuck session. The
                // detector went with the sinks, so the outbox can store its last findings.
                writer.finish();
                outbox.finish();
                tracing::info!("pgvigil stopped");
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PGVIGIL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // sqlparser's own debug output quotes the SQL it parses, literals and passwords
    // included: SQL leaves the process only through the audit log, so its logging is off
    // whatever PGVIGIL_LOG says (a later directive for the same target replaces an earlier).
    let filter = match "sqlparser=off".parse() {
        Ok(d) => filter.add_directive(d),
        Err(_) => filter,
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Runs `f` on a fresh runtime, then shuts the runtime down (dropping any task left).
fn runtime_then<T, F, Fut>(f: F) -> Result<T, ExitCode>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    // The main runtime runs the accept loop, signals, metrics and alert delivery; the
    // sessions run on their own threads (frontend/threads.rs).
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pgvigil: cannot start the runtime: {e}");
            return Err(ExitCode::from(1));
        }
    };
    let result = rt.block_on(f());
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    result.map_err(|e| {
        eprintln!("pgvigil: {e}");
        ExitCode::from(1)
    })
}

async fn run(path: PathBuf) -> Result<(AuditWriter, OutboxWriter), String> {
    let config = pgvigil::snapshot::load(&path).map_err(|e| e.to_string())?;
    let exporter =
        pgvigil::metrics::install(config.file.metrics.listen).map_err(|e| e.to_string())?;
    let metrics = Arc::new(pgvigil::metrics::Metrics::new());
    let alerting = Arc::new(Alerting::start(&config).map_err(|e| e.to_string())?);
    let (findings_tx, findings_rx) = tokio::sync::mpsc::unbounded_channel();
    let outbox = OutboxWriter::start(alerting.root().to_path_buf(), alerting.slots(), findings_rx)
        .map_err(|e| {
            format!(
                "cannot start the outbox in {}: {e}",
                alerting.root().display()
            )
        })?;
    let detector = Arc::new(Detector::new(&config, findings_tx));
    if let Some(cluster) = &config.file.cluster {
        pgvigil::cluster::start(cluster, &detector).map_err(|e| e.to_string())?;
    }
    let audit_log = resolve(&path, &config.file.audit.log);
    let (sink, writer) = AuditWriter::start(
        WriterOptions {
            log: &audit_log,
            capacity: config.file.audit.queue_capacity,
            format: config.file.audit.format,
            durability: config.file.audit.durability,
            rotation: config
                .file
                .audit
                .rotate_size
                .map(|size| pgvigil::audit::Rotation {
                    size: size.0,
                    keep: config.file.audit.rotate_keep,
                }),
        },
        metrics.clone(),
        detector.clone(),
    )
    .map_err(|e| e.to_string())?;
    let addr = config.file.listen.addr;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e} (change [listen] addr)"))?;
    tracing::info!(%addr, audit_log = %audit_log, "pgvigil listening");
    let shared = Arc::new(Shared::new(config, sink, metrics));
    if let Some(exporter) = exporter {
        let shared = shared.clone();
        exporter.serve(Arc::new(move || {
            let c = shared.config();
            let u = &c.file.upstream;
            (u.host.clone(), u.port)
        }));
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let signals = tokio::spawn(signals(shared.clone(), path, stop_tx, alerting.clone()));
    let sweeper = tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(30));
        loop {
            tick.tick().await;
            detector.sweep();
        }
    });
    let threads = SessionThreads::start(shared.config().file.listen.threads)
        .map_err(|e| format!("cannot start the session threads: {e}"))?;
    listener::serve(shared.clone(), listener, stop_rx, &threads).await;
    // Sessions are over (or were closed): their threads end, dropping nothing but idle
    // event loops.
    tokio::task::block_in_place(|| threads.stop());
    signals.abort();
    sweeper.abort();
    alerting.stop();
    Ok((writer, outbox))
}

/// The audit log path: relative paths are relative to the config file, like other paths.
fn resolve(config_path: &std::path::Path, log: &str) -> String {
    if log == "-" || std::path::Path::new(log).is_absolute() {
        return log.to_string();
    }
    match config_path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(log).display().to_string(),
        _ => log.to_string(),
    }
}

/// Every signal a process manager sends is handled on purpose: SIGTERM, SIGINT and SIGQUIT
/// stop (draining sessions); SIGHUP reloads the config (the running one stays if the new
/// one is invalid; the listen address and the audit writer's file, format and queue are
/// fixed until restart) and reopens the audit log; SIGUSR1 reopens the audit log (what
/// logrotate sends after moving it); SIGUSR2 is logged and ignored. New sessions use the
/// new snapshot; running sessions keep theirs.
async fn signals(
    shared: Arc<Shared>,
    path: PathBuf,
    stop: tokio::sync::watch::Sender<bool>,
    alerting: Arc<Alerting>,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut quit), Ok(mut hup), Ok(mut usr1), Ok(mut usr2)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::quit()),
        signal(SignalKind::hangup()),
        signal(SignalKind::user_defined1()),
        signal(SignalKind::user_defined2()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = quit.recv() => break,
            _ = usr1.recv() => shared.audit.reopen().await,
            _ = usr2.recv() => tracing::info!("SIGUSR2 ignored (SIGHUP reloads, SIGUSR1 reopens the audit log)"),
            _ = hup.recv() => match pgvigil::snapshot::load(&path).map_err(|e| e.to_string()).and_then(|new| {
                // Everything that can fail is built before anything is swapped.
                Alerting::prepare(&new)
                    .map(|channels| (new, channels))
                    .map_err(|e| format!("alert channels: {e}"))
            }) {
                Ok((new, channels)) => {
                    let old = shared.config();
                    let (n, o) = (&new.file, &old.file);
                    if n.listen.addr != o.listen.addr
                        || n.listen.threads != o.listen.threads
                        || n.audit.log != o.audit.log
                        || n.audit.format != o.audit.format
                        || n.audit.durability != o.audit.durability
                        || n.audit.queue_capacity != o.audit.queue_capacity
                    {
                        tracing::warn!(
                            "listen.addr, listen.threads, audit.log, audit.format, \
                             audit.durability and audit.queue_capacity changes take effect \
                             at restart"
                        );
                    }
                    if n.alerts.outbox_dir != o.alerts.outbox_dir {
                        tracing::warn!("alerts.outbox_dir changes take effect at restart");
                    }
                    if n.cluster.as_ref().map(|c| (&c.redis_url, &c.key_prefix))
                        != o.cluster.as_ref().map(|c| (&c.redis_url, &c.key_prefix))
                    {
                        tracing::warn!("[cluster] changes take effect at restart");
                    }
                    shared.audit.reopen().await;
                    shared.audit.detector().reload(&new);
                    alerting.install(channels);
                    let rules = new.rules.len();
                    shared.set_config(new);
                    tracing::info!(rules, "configuration reloaded");
                }
                Err(e) => tracing::error!(error = %e, "reload failed; keeping the running configuration"),
            },
        }
    }
    tracing::info!("shutdown requested");
    let _ = stop.send(true);
}
