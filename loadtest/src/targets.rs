//! The proxies under test: a `pgvigil run` and a PgBouncer in session mode, each in its own
//! temporary directory with a generated configuration, started as child processes and
//! stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use pgvigil::certs::{write_dev_certs, DevCerts};
use tempfile::TempDir;

use crate::procs::{self, ChildGuard};

/// How long a proxy gets to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Attempts with a fresh port when the picked one was taken meanwhile.
const PORT_ATTEMPTS: usize = 3;
/// The benchmark role and its password (a fixed role of every `Cluster`).
pub const APP_USER: &str = "app_user";
/// Password of [`APP_USER`].
pub const APP_PASSWORD: &str = "app_pass";

/// Hosts the generated server certificates are valid for.
fn cert_hosts() -> Vec<String> {
    vec!["localhost".to_owned(), "127.0.0.1".to_owned()]
}

/// How to configure one pgvigil instance.
#[derive(Debug, Clone)]
pub struct PgvigilOptions {
    /// `[listen.tls] mode`: "disable", "allow", "require".
    pub tls_mode: &'static str,
    /// `[upstream] sslmode`.
    pub upstream_sslmode: &'static str,
    /// Upstream PostgreSQL port on 127.0.0.1.
    pub upstream_port: u16,
    /// CA of the upstream server certificate, if any.
    pub upstream_ca: Option<PathBuf>,
    /// `[listen] max_client_conn`.
    pub max_client_conn: usize,
    /// `[audit] durability`: "queued", "written" or "synced".
    pub durability: &'static str,
}

/// A running `pgvigil run --config FILE`.
#[derive(Debug)]
pub struct Pgvigil {
    /// The process (declared first: stopped before the directory is removed).
    guard: ChildGuard,
    /// Client port on 127.0.0.1.
    pub port: u16,
    _dir: TempDir,
}

impl Pgvigil {
    /// Writes a config (same shape as the integration tests') and starts `bin` with it,
    /// waiting until it accepts connections.
    pub fn start(bin: &Path, opts: &PgvigilOptions) -> Result<Pgvigil> {
        let dir = procs::scratch_dir("pgvigil-")?;
        write_dev_certs(&dir.path().join("certs"), &cert_hosts(), APP_USER)
            .context("cannot write pgvigil's certificates")?;
        let mut last_err = None;
        for attempt in 0..PORT_ATTEMPTS {
            let port = procs::free_port()?;
            let metrics_port = procs::free_port()?;
            let config = dir.path().join("pgvigil.toml");
            let text = pgvigil_config(opts, port, metrics_port);
            std::fs::write(&config, text)
                .with_context(|| format!("cannot write {}", config.display()))?;
            let log = dir.path().join(format!("pgvigil-{attempt}.log"));
            let mut cmd = Command::new(bin);
            cmd.args(["run", "--config"])
                .arg(&config)
                .current_dir(dir.path());
            let mut guard = ChildGuard::spawn("pgvigil", &mut cmd, &log)?;
            match guard.wait_listening(port, START_TIMEOUT) {
                Ok(()) => {
                    return Ok(Pgvigil {
                        guard,
                        port,
                        _dir: dir,
                    })
                }
                Err(e) => {
                    let port_taken = guard.log_tail(30).contains("cannot listen");
                    drop(guard);
                    if !port_taken {
                        return Err(e);
                    }
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow::anyhow!("pgvigil did not start")))
    }

    /// Process id, for /proc.
    pub fn pid(&self) -> Option<u32> {
        self.guard.pid()
    }

    /// The CA that signed pgvigil's server certificate.
    pub fn ca_cert(&self) -> std::path::PathBuf {
        self._dir.path().join("certs").join("ca.crt")
    }

    /// pgvigil's output so far (its stderr log).
    pub fn log(&self) -> String {
        self.guard.log_text()
    }

    /// Whether the process is still running.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.guard.exited() {
            bail!(
                "pgvigil exited ({status}); its output:\n{}",
                self.guard.log_tail(30)
            );
        }
        Ok(())
    }
}

/// The pgvigil configuration text.
fn pgvigil_config(opts: &PgvigilOptions, port: u16, metrics_port: u16) -> String {
    let ca = opts
        .upstream_ca
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    format!(
        r#"# Written by pgvigil-loadtest.
[listen]
addr = "127.0.0.1:{port}"
max_client_conn = {max}
startup_timeout = "30s"
shutdown_timeout = "2s"

[listen.tls]
mode = "{tls_mode}"
cert_file = "certs/server.crt"
key_file = "certs/server.key"
ca_file = "certs/ca.crt"

[upstream]
host = "127.0.0.1"
port = {upstream_port}
sslmode = "{sslmode}"
ca_file = "{ca}"
connect_timeout = "10s"

[auth]
mode = "password"

[audit]
log = "audit.jsonl"
durability = "{durability}"

[metrics]
listen = "127.0.0.1:{metrics_port}"
"#,
        max = opts.max_client_conn,
        tls_mode = opts.tls_mode,
        upstream_port = opts.upstream_port,
        sslmode = opts.upstream_sslmode,
        durability = opts.durability,
    )
}

/// A running PgBouncer in session pool mode.
#[derive(Debug)]
pub struct Pgbouncer {
    /// The process (declared first: stopped before the directory is removed).
    guard: ChildGuard,
    /// Client port on 127.0.0.1.
    pub port: u16,
    _dir: TempDir,
}

impl Pgbouncer {
    /// Process id (PgBouncer runs as one process in the foreground).
    pub fn pid(&self) -> Option<u32> {
        self.guard.pid()
    }

    /// Writes an ini and auth_file and starts `bin` (as the `postgres` user when we are
    /// root: PgBouncer refuses to run as root). With `tls`, clients must use TLS and so
    /// does PgBouncer's connection to the server.
    pub fn start(bin: &Path, upstream_port: u16, tls: bool) -> Result<Pgbouncer> {
        let dir = procs::scratch_dir("pgbouncer-")?;
        let owner = if procs::is_root() {
            Some(procs::postgres_user()?)
        } else {
            None
        };
        let certs = if tls {
            Some(
                write_dev_certs(&dir.path().join("certs"), &cert_hosts(), APP_USER)
                    .context("cannot write PgBouncer's certificates")?,
            )
        } else {
            None
        };
        let userlist = dir.path().join("userlist.txt");
        // Plaintext is fine for auth_type scram-sha-256: PgBouncer derives what it needs.
        std::fs::write(&userlist, format!("\"{APP_USER}\" \"{APP_PASSWORD}\"\n"))
            .with_context(|| format!("cannot write {}", userlist.display()))?;
        if let Some(owner) = owner {
            hand_over(dir.path(), certs.as_ref(), &userlist, owner)?;
        }
        let mut last_err = None;
        for attempt in 0..PORT_ATTEMPTS {
            let port = procs::free_port()?;
            let ini = dir.path().join("pgbouncer.ini");
            std::fs::write(
                &ini,
                pgbouncer_ini(port, upstream_port, &userlist, certs.as_ref()),
            )
            .with_context(|| format!("cannot write {}", ini.display()))?;
            if let Some(owner) = owner {
                procs::chown(&ini, owner)?;
            }
            let log = dir.path().join(format!("pgbouncer-{attempt}.log"));
            let mut cmd = Command::new(bin);
            cmd.arg(&ini).current_dir(dir.path());
            if let Some((uid, gid)) = owner {
                use std::os::unix::process::CommandExt;
                cmd.uid(uid)
                    .gid(gid)
                    .env("HOME", dir.path())
                    .env("USER", "postgres");
            }
            let mut guard = ChildGuard::spawn("pgbouncer", &mut cmd, &log)?;
            match guard.wait_listening(port, START_TIMEOUT) {
                Ok(()) => {
                    return Ok(Pgbouncer {
                        guard,
                        port,
                        _dir: dir,
                    })
                }
                Err(e) => {
                    let tail = guard.log_tail(30);
                    drop(guard);
                    if !tail.contains("Address already in use") {
                        return Err(e);
                    }
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow::anyhow!("PgBouncer did not start")))
    }

    /// Whether the process is still running.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.guard.exited() {
            bail!(
                "PgBouncer exited ({status}); its output:\n{}",
                self.guard.log_tail(30)
            );
        }
        Ok(())
    }
}

/// Gives the directory, keys and auth file to the `postgres` user that runs PgBouncer.
fn hand_over(
    dir: &Path,
    certs: Option<&DevCerts>,
    userlist: &Path,
    owner: (u32, u32),
) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot set permissions on {}", dir.display()))?;
    procs::chown(dir, owner)?;
    procs::chown(userlist, owner)?;
    if let Some(c) = certs {
        let certs_dir = c.ca_cert.parent().unwrap_or(dir);
        procs::chown(certs_dir, owner)?;
        for f in [
            &c.ca_cert,
            &c.ca_key,
            &c.server_cert,
            &c.server_key,
            &c.client_cert,
            &c.client_key,
        ] {
            procs::chown(f, owner)?;
        }
    }
    Ok(())
}

/// The pgbouncer.ini text.
fn pgbouncer_ini(
    port: u16,
    upstream_port: u16,
    userlist: &Path,
    certs: Option<&DevCerts>,
) -> String {
    let mut text = format!(
        "; Written by pgvigil-loadtest.\n\
         [databases]\n\
         app = host=127.0.0.1 port={upstream_port} dbname=app\n\
         \n\
         [pgbouncer]\n\
         listen_addr = 127.0.0.1\n\
         listen_port = {port}\n\
         unix_socket_dir =\n\
         auth_type = scram-sha-256\n\
         auth_file = {userlist}\n\
         pool_mode = session\n\
         max_client_conn = 200\n\
         default_pool_size = 40\n\
         ignore_startup_parameters = extra_float_digits\n",
        userlist = userlist.display(),
    );
    if let Some(c) = certs {
        text.push_str(&format!(
            "client_tls_sslmode = require\n\
             client_tls_cert_file = {}\n\
             client_tls_key_file = {}\n\
             server_tls_sslmode = require\n",
            c.server_cert.display(),
            c.server_key.display()
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ini_has_tls_only_when_asked() {
        let plain = pgbouncer_ini(1, 2, Path::new("/u"), None);
        assert!(plain.contains("pool_mode = session"));
        assert!(!plain.contains("tls"));
    }

    #[test]
    fn pgvigil_config_parses() {
        let opts = PgvigilOptions {
            tls_mode: "disable",
            upstream_sslmode: "disable",
            upstream_port: 5432,
            upstream_ca: None,
            max_client_conn: 10,
            durability: "written",
        };
        let text = pgvigil_config(&opts, 6432, 9187);
        let dir = tempfile::tempdir().expect("tempdir");
        let certs =
            write_dev_certs(&dir.path().join("certs"), &cert_hosts(), APP_USER).expect("certs");
        assert!(certs.server_cert.is_file());
        let path = dir.path().join("pgvigil.toml");
        pgvigil::snapshot::load_str(&text, &path).expect("config is valid");
    }
}
