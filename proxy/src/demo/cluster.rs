//! Throwaway PostgreSQL clusters for the integration tests, the load test and
//! `pgvigil demo`.
//!
//! Each [`Cluster`] lives in its own temporary directory (data directory, unix socket,
//! certificates, server log) on its own port, so any number can run side by side and
//! none collides with a system cluster. Dropping it stops the server and deletes the
//! directory, also when a test panics; a guard process does the same if this process
//! dies without dropping it (see `watchdog`).
//!
//! Every cluster has the same fixed roles ([`TEST_ROLES`]), one per authentication
//! method, plus the database [`APP_DB`] owned by `app_user`.

use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::roles::{hba_conf, roles_sql};
pub use super::roles::{HbaAuth, TestRole, TEST_ROLES};

use super::pgbin::{self, PgTools};
use super::watchdog::Watchdog;
use crate::certs::{self, CertsError, DevCerts};

/// The superuser, reachable without a password over the unix socket and 127.0.0.1.
pub const SUPERUSER: &str = "postgres";
/// Database owned by `app_user`, created in every cluster.
pub const APP_DB: &str = "app";
/// Address the server listens on.
const LISTEN_HOST: &str = "127.0.0.1";
/// Attempts at picking a free port before giving up (another process can take the port
/// between our probe and the server's bind).
const PORT_ATTEMPTS: usize = 5;
/// Upper bound on waiting for the server to accept TCP connections after `pg_ctl -w`.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest unix socket directory that still leaves room for `/.s.PGSQL.65535` in the
/// 108-byte `sun_path`.
const MAX_SOCKET_DIR_LEN: usize = 90;
/// Environment variable choosing where cluster directories are created.
pub const CLUSTER_DIR_ENV: &str = "PGVIGIL_CLUSTER_DIR";

/// Errors from creating, starting or querying a [`Cluster`].
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No PostgreSQL server installation was found.
    #[error("PostgreSQL server binaries not found: install the Debian package postgresql (apt-get install postgresql) or set PGVIGIL_PG_BIN")]
    BinariesNotFound,
    /// `PGVIGIL_PG_BIN` points somewhere without initdb.
    #[error("PGVIGIL_PG_BIN={} does not contain initdb: point it at the bin directory of a PostgreSQL server install (e.g. /usr/lib/postgresql/15/bin)", dir.display())]
    BadPgBin {
        /// The directory named by the variable.
        dir: PathBuf,
    },
    /// Running as root without a `postgres` user to run the server as.
    #[error("running as root, but there is no `postgres` system user to run the server as (initdb refuses to run as root): install the postgresql package, create the user (useradd --system postgres), or run as a non-root user")]
    NoPostgresUser,
    /// A file system operation failed.
    #[error("cannot {action}: {source}")]
    Io {
        /// What was being done, phrased to follow "cannot".
        action: String,
        /// Underlying I/O error.
        source: std::io::Error,
    },
    /// A program could not be started at all.
    #[error("cannot run {}: {source}", program.display())]
    Spawn {
        /// The program.
        program: PathBuf,
        /// Underlying I/O error.
        source: std::io::Error,
    },
    /// A program exited unsuccessfully.
    #[error("{program} failed ({status}):\n{output}")]
    CommandFailed {
        /// The program.
        program: String,
        /// Its exit status.
        status: ExitStatus,
        /// Its stderr and stdout.
        output: String,
    },
    /// The directory for the cluster is too deep for a unix socket path.
    #[error("the cluster directory {} is too long to hold a unix socket (at most {MAX_SOCKET_DIR_LEN} bytes): set PGVIGIL_CLUSTER_DIR to a shorter directory such as /tmp", dir.display())]
    SocketPathTooLong {
        /// The directory.
        dir: PathBuf,
    },
    /// The server did not start.
    #[error("PostgreSQL failed to start on port {port}; end of the server log {}:\n{log_tail}", log.display())]
    Start {
        /// Port it was started on.
        port: u16,
        /// The server log.
        log: PathBuf,
        /// The last lines of the server log.
        log_tail: String,
    },
    /// The server started but did not accept connections in time.
    #[error("PostgreSQL on port {port} did not accept connections within {waited:?}; end of the server log:\n{log_tail}")]
    NotReady {
        /// Port it was started on.
        port: u16,
        /// How long we waited.
        waited: Duration,
        /// The last lines of the server log.
        log_tail: String,
    },
    /// A psql invocation failed.
    #[error("psql as {user} on database {db} failed ({status}): {stderr}")]
    Psql {
        /// User psql connected as.
        user: String,
        /// Database psql connected to.
        db: String,
        /// psql's exit status.
        status: ExitStatus,
        /// psql's error output.
        stderr: String,
    },
    /// The TLS certificates for the server could not be generated.
    #[error("cannot create the cluster's TLS certificates: {0}")]
    Certs(#[from] CertsError),
}

/// How to set up a [`Cluster`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterOptions {
    /// Port to listen on; `None` picks a free one.
    pub port: Option<u16>,
    /// Enable TLS (`ssl = on`) with certificates generated for localhost/127.0.0.1.
    pub tls: bool,
    /// Method for `app_user` and any role without its own pg_hba line.
    pub auth: HbaAuth,
    /// `max_connections`.
    pub max_connections: u32,
    /// Extra postgresql.conf lines, applied last (e.g. `shared_preload_libraries = '...'`).
    pub extra_conf: Vec<String>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            port: None,
            tls: false,
            auth: HbaAuth::ScramSha256,
            max_connections: 200,
            extra_conf: Vec::new(),
        }
    }
}

/// A running throwaway PostgreSQL server. Dropping it stops the server and deletes its
/// directory.
#[derive(Debug)]
pub struct Cluster {
    /// Owns the directory; `None` once removed.
    dir: Option<TempDir>,
    /// The directory: socket dir, parent of data, certs and the log.
    root: PathBuf,
    data_dir: PathBuf,
    log_file: PathBuf,
    port: u16,
    tools: PgTools,
    certs: Option<DevCerts>,
    /// Cleans up if this process dies without dropping the cluster.
    watchdog: Option<Watchdog>,
}

impl Cluster {
    /// Creates, starts and populates a cluster. Blocks until it accepts connections.
    pub fn start(opts: ClusterOptions) -> Result<Cluster, ClusterError> {
        let tools = PgTools::find()?;
        let dir = create_root_dir(&tools)?;
        let root = dir.path().to_path_buf();
        let data_dir = root.join("data");
        let watchdog = Watchdog::spawn(&tools, &root, &data_dir)?;
        let mut cluster = Cluster {
            data_dir,
            log_file: root.join("data").join("server.log"),
            root,
            dir: Some(dir),
            port: 0,
            tools,
            certs: None,
            watchdog: Some(watchdog),
        };
        // From here on, Drop cleans up whatever got started if a later step fails.
        if opts.tls {
            cluster.certs = Some(cluster.write_certs()?);
        }
        cluster.initdb(opts.auth)?;
        cluster.write_hba(opts.auth)?;
        cluster.start_server(&opts)?;
        cluster.create_roles()?;
        Ok(cluster)
    }

    /// TCP port of the server.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// TCP host of the server, always `127.0.0.1`.
    pub fn host(&self) -> &str {
        LISTEN_HOST
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The directory holding the server's unix socket (use as `host` for libpq).
    pub fn socket_dir(&self) -> &Path {
        &self.root
    }

    /// The server log.
    pub fn log_file(&self) -> &Path {
        &self.log_file
    }

    /// The last `lines` lines of the server log (empty when it cannot be read).
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log_file, lines)
    }

    /// The CA that signed the server certificate, when started with TLS.
    pub fn ca_cert(&self) -> Option<&Path> {
        self.certs.as_ref().map(|c| c.ca_cert.as_path())
    }

    /// The server certificate, when started with TLS.
    pub fn server_cert(&self) -> Option<&Path> {
        self.certs.as_ref().map(|c| c.server_cert.as_path())
    }

    /// All generated certificates (including a client certificate for `postgres`), when
    /// started with TLS.
    pub fn certs(&self) -> Option<&DevCerts> {
        self.certs.as_ref()
    }

    /// Path of `pgbench`, `psql`, ... from the same installation as the server (client
    /// tools fall back to `PATH`).
    pub fn bin(&self, name: &str) -> PathBuf {
        self.tools.bin(name)
    }

    /// The PostgreSQL `bin` directory in use.
    pub fn bin_dir(&self) -> &Path {
        self.tools.bin_dir()
    }

    /// Runs `sql` with `psql -X -A -t -q -v ON_ERROR_STOP=1` as `user` on `db` over the
    /// unix socket (trusted for every user) and returns its standard output.
    ///
    /// The SQL goes through standard input, so it may hold several statements, psql
    /// meta-commands and statements such as `CREATE DATABASE` that cannot run in a
    /// transaction block.
    pub fn psql(&self, user: &str, db: &str, sql: &str) -> Result<String, ClusterError> {
        let mut cmd = self.tools.client_command("psql");
        cmd.args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.root)
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-U", user, "-d", db, "-f", "-"])
            .env("PGCONNECT_TIMEOUT", "10")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let program = PathBuf::from(cmd.get_program());
        let mut child = cmd.spawn().map_err(|source| ClusterError::Spawn {
            program: program.clone(),
            source,
        })?;
        // Feed stdin from another thread: psql may fill its stdout pipe before it has
        // read all of a long script.
        let writer = child.stdin.take().map(|mut stdin| {
            let sql = sql.to_owned();
            std::thread::spawn(move || {
                // A write error means psql exited early; its status reports why.
                let _ = stdin.write_all(sql.as_bytes());
            })
        });
        let output = child
            .wait_with_output()
            .map_err(|source| ClusterError::Spawn { program, source })?;
        if let Some(writer) = writer {
            let _ = writer.join();
        }
        if !output.status.success() {
            return Err(ClusterError::Psql {
                user: user.to_owned(),
                db: db.to_owned(),
                status: output.status,
                stderr: pgbin::combined_output(&output),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Stops the server and removes the directory (what Drop does, made explicit).
    pub fn stop(self) {
        drop(self);
    }

    /// Stops the server (`pg_ctl stop -m fast`) but keeps its data directory, so
    /// [`Cluster::resume`] can start it again: an outage of the database, as clients see
    /// it. Dropping a paused cluster still removes everything.
    pub fn pause(&self) -> Result<(), ClusterError> {
        let mut cmd = self.tools.server_command("pg_ctl", &self.root);
        cmd.arg("-D")
            .arg(&self.data_dir)
            .args(["-m", "fast", "-w", "-t", "60", "stop"]);
        pgbin::run(&mut cmd)?;
        Ok(())
    }

    /// Starts a paused server again on the same port and data directory, and waits until
    /// it accepts TCP connections.
    pub fn resume(&self) -> Result<(), ClusterError> {
        match pgbin::run(&mut self.pg_ctl_start()) {
            Ok(_) => self.wait_ready(),
            Err(ClusterError::CommandFailed { .. }) => Err(ClusterError::Start {
                port: self.port,
                log: self.log_file.clone(),
                log_tail: self.log_tail(30),
            }),
            Err(other) => Err(other),
        }
    }

    fn write_certs(&self) -> Result<DevCerts, ClusterError> {
        let dir = self.root.join("certs");
        let hosts = ["localhost".to_owned(), LISTEN_HOST.to_owned()];
        let certs = certs::write_dev_certs(&dir, &hosts, SUPERUSER)?;
        // The server reads these as the postgres user and insists on owning its key.
        self.tools.chown(&dir)?;
        for file in [
            &certs.ca_cert,
            &certs.ca_key,
            &certs.server_cert,
            &certs.server_key,
            &certs.client_cert,
            &certs.client_key,
        ] {
            self.tools.chown(file)?;
        }
        Ok(certs)
    }

    fn initdb(&self, auth: HbaAuth) -> Result<(), ClusterError> {
        let mut cmd = self.tools.server_command("initdb", &self.root);
        cmd.arg("-D")
            .arg(&self.data_dir)
            .args(["-U", SUPERUSER, "--auth-local=trust"])
            .arg(format!("--auth-host={}", auth.hba_method()))
            .args(["-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"]);
        pgbin::run(&mut cmd)?;
        Ok(())
    }

    fn write_hba(&self, auth: HbaAuth) -> Result<(), ClusterError> {
        self.write_data_file("pg_hba.conf", &hba_conf(auth))?;
        // Our settings live in their own file so a port retry can rewrite them.
        let conf = self.data_dir.join("postgresql.conf");
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&conf)
            .map_err(|source| ClusterError::Io {
                action: format!("open {}", conf.display()),
                source,
            })?;
        file.write_all(b"\n# Added by the pgvigil cluster harness.\ninclude = 'pgvigil.conf'\n")
            .map_err(|source| ClusterError::Io {
                action: format!("append to {}", conf.display()),
                source,
            })
    }

    /// Writes a file in the data directory, owned by the server user.
    fn write_data_file(&self, name: &str, contents: &str) -> Result<(), ClusterError> {
        let path = self.data_dir.join(name);
        std::fs::write(&path, contents).map_err(|source| ClusterError::Io {
            action: format!("write {}", path.display()),
            source,
        })?;
        self.tools.chown(&path)
    }

    fn server_conf(&self, opts: &ClusterOptions, port: u16) -> String {
        let mut lines = vec![
            format!("listen_addresses = '{LISTEN_HOST}'"),
            format!("port = {port}"),
            format!("unix_socket_directories = {}", conf_str(&self.root)),
            format!("max_connections = {}", opts.max_connections),
            // Throwaway data: durability only costs time.
            "fsync = off".to_owned(),
            "synchronous_commit = off".to_owned(),
            "full_page_writes = off".to_owned(),
            "password_encryption = 'scram-sha-256'".to_owned(),
            // stderr goes to the log file given to pg_ctl -l, in the data directory.
            "logging_collector = off".to_owned(),
            "log_destination = 'stderr'".to_owned(),
            // %e (SQLSTATE) lets tests find e.g. 28P01 in the log.
            "log_line_prefix = '%m [%p] %e %q%u@%d '".to_owned(),
            "log_connections = on".to_owned(),
        ];
        match &self.certs {
            Some(certs) => {
                lines.push("ssl = on".to_owned());
                lines.push(format!("ssl_cert_file = {}", conf_str(&certs.server_cert)));
                lines.push(format!("ssl_key_file = {}", conf_str(&certs.server_key)));
            }
            None => lines.push("ssl = off".to_owned()),
        }
        lines.extend(opts.extra_conf.iter().cloned());
        let mut text = lines.join("\n");
        text.push('\n');
        text
    }

    /// Starts the server with `pg_ctl -w`, retrying with another port when a picked
    /// port turns out to be taken, then waits until it accepts TCP connections.
    fn start_server(&mut self, opts: &ClusterOptions) -> Result<(), ClusterError> {
        let attempts = if opts.port.is_some() {
            1
        } else {
            PORT_ATTEMPTS
        };
        for attempt in 1..=attempts {
            let port = match opts.port {
                Some(port) => port,
                None => free_port()?,
            };
            self.port = port;
            self.write_data_file("pgvigil.conf", &self.server_conf(opts, port))?;
            let log_start = file_len(&self.log_file);
            match pgbin::run(&mut self.pg_ctl_start()) {
                Ok(_) => return self.wait_ready(),
                Err(ClusterError::CommandFailed { .. }) => {
                    let new_log = read_from(&self.log_file, log_start);
                    if attempt < attempts && is_port_conflict(&new_log) {
                        tracing::debug!(port, "port taken, retrying with another");
                        continue;
                    }
                    return Err(ClusterError::Start {
                        port,
                        log: self.log_file.clone(),
                        log_tail: self.log_tail(30),
                    });
                }
                Err(other) => return Err(other),
            }
        }
        // Unreachable in practice: the last attempt always returns.
        Err(ClusterError::Start {
            port: self.port,
            log: self.log_file.clone(),
            log_tail: self.log_tail(30),
        })
    }

    /// Polls until the server accepts TCP connections: pg_ctl -w only proves it is up on
    /// the unix socket.
    /// `pg_ctl start`, waiting up to a minute, logging to the cluster's log file.
    fn pg_ctl_start(&self) -> std::process::Command {
        let mut cmd = self.tools.server_command("pg_ctl", &self.root);
        cmd.arg("-D")
            .arg(&self.data_dir)
            .arg("-l")
            .arg(&self.log_file)
            .args(["-w", "-t", "60", "start"]);
        cmd
    }

    fn wait_ready(&self) -> Result<(), ClusterError> {
        let started = Instant::now();
        let pg_isready = self.tools.bin("pg_isready");
        let mut delay = Duration::from_millis(10);
        loop {
            let ready = if pg_isready.is_file() {
                self.tools
                    .client_command("pg_isready")
                    .args(["-q", "-h", LISTEN_HOST, "-p"])
                    .arg(self.port.to_string())
                    .args(["-U", SUPERUSER, "-d", "postgres", "-t", "2"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            } else {
                let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
                TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok()
            };
            if ready {
                return Ok(());
            }
            if started.elapsed() >= READY_TIMEOUT {
                return Err(ClusterError::NotReady {
                    port: self.port,
                    waited: started.elapsed(),
                    log_tail: self.log_tail(30),
                });
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_millis(200));
        }
    }

    fn create_roles(&self) -> Result<(), ClusterError> {
        self.psql(SUPERUSER, "postgres", &roles_sql())?;
        Ok(())
    }

    /// Stops the server if it is running. Never panics: it runs from Drop.
    fn stop_server(&self) {
        let pid_file = self.data_dir.join("postmaster.pid");
        if !pid_file.exists() {
            return;
        }
        let pid = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.lines().next().and_then(|l| l.trim().parse::<i32>().ok()));
        let mut cmd = self.tools.server_command("pg_ctl", &self.root);
        cmd.arg("-D")
            .arg(&self.data_dir)
            .args(["-m", "immediate", "-w", "-t", "30", "stop"]);
        if let Err(e) = pgbin::run(&mut cmd) {
            tracing::warn!(error = %e, "pg_ctl stop failed; killing the postmaster");
            #[cfg(unix)]
            if let Some(pid) = pid.filter(|p| *p > 0) {
                // SAFETY: kill has no memory-safety preconditions; the pid came from
                // this cluster's own postmaster.pid.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(watchdog) = self.watchdog.take() {
            watchdog.disarm();
        }
        self.stop_server();
        if let Some(dir) = self.dir.take() {
            let path = dir.path().to_path_buf();
            if let Err(e) = dir.close() {
                tracing::warn!(dir = %path.display(), error = %e, "cannot remove cluster directory");
            }
        }
    }
}

/// Creates the cluster's directory, reachable by the server user.
fn create_root_dir(tools: &PgTools) -> Result<TempDir, ClusterError> {
    let base = match std::env::var_os(CLUSTER_DIR_ENV).filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        // Root's TMPDIR may be private to root; /tmp is reachable by postgres.
        None if pgbin::is_root() => PathBuf::from("/tmp"),
        None => std::env::temp_dir(),
    };
    let dir = tempfile::Builder::new()
        .prefix("pgvigil-pg-")
        .tempdir_in(&base)
        .map_err(|source| ClusterError::Io {
            action: format!(
                "create a cluster directory in {} (set {CLUSTER_DIR_ENV} to a writable directory)",
                base.display()
            ),
            source,
        })?;
    if dir.path().as_os_str().len() > MAX_SOCKET_DIR_LEN {
        return Err(ClusterError::SocketPathTooLong {
            dir: dir.path().to_path_buf(),
        });
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // Others may reach the socket and ca.crt; keys and data stay private (0600/0700).
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).map_err(
            |source| ClusterError::Io {
                action: format!("set permissions on {}", dir.path().display()),
                source,
            },
        )?;
    }
    tools.chown(dir.path())?;
    Ok(dir)
}

/// A port that was free a moment ago. Racy by nature; callers retry on conflict.
fn free_port() -> Result<u16, ClusterError> {
    let listener = TcpListener::bind((LISTEN_HOST, 0)).map_err(|source| ClusterError::Io {
        action: "bind 127.0.0.1:0 to find a free port".to_owned(),
        source,
    })?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|source| ClusterError::Io {
            action: "read the address of a probe socket".to_owned(),
            source,
        })
}

fn is_port_conflict(log: &str) -> bool {
    log.contains("could not bind")
        || log.contains("Address already in use")
        || log.contains("could not create any TCP/IP sockets")
        || log.contains("lock file") && log.contains("already exists")
}

/// A string literal for postgresql.conf.
fn conf_str(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', "''"))
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// The contents of `path` from byte `offset` on (empty when unreadable).
fn read_from(path: &Path, offset: u64) -> String {
    let mut text = Vec::new();
    if let Ok(mut file) = std::fs::File::open(path) {
        if file.seek(SeekFrom::Start(offset)).is_ok() {
            let _ = file.read_to_end(&mut text);
        }
    }
    String::from_utf8_lossy(&text).into_owned()
}

/// The last `lines` lines of a log file (reads at most the last 64 KiB).
pub(crate) fn log_tail(path: &Path, lines: usize) -> String {
    let len = file_len(path);
    let text = read_from(path, len.saturating_sub(64 * 1024));
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_tail_keeps_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        std::fs::write(&log, "a\nb\nc\nd\n").unwrap();
        assert_eq!(log_tail(&log, 2), "c\nd");
        assert_eq!(log_tail(&dir.path().join("missing"), 2), "");
    }

    #[test]
    fn conf_strings_are_quoted() {
        assert_eq!(conf_str(Path::new("/tmp/it's")), "'/tmp/it''s'");
    }
}
