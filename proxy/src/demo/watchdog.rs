//! A guard process per cluster that stops the server and deletes the cluster directory
//! when the process that started the cluster dies without running `Drop`: SIGKILL, a
//! test-runner timeout, a `static` cluster that is never dropped, `std::process::exit`.
//!
//! The guard is `sh` blocked reading a pipe whose only writer is this process. The
//! kernel closes the pipe however we die, `read` returns, and the guard runs
//! `pg_ctl stop -m immediate` and `rm -rf`. A normal `Drop` kills the guard first and
//! cleans up itself, so the two never race over the directory.

use std::path::Path;
use std::process::{Child, Stdio};

use super::cluster::ClusterError;
use super::pgbin::PgTools;

/// Waits for its stdin to close, then stops the server in `$1` and removes `$2`.
/// `$0` is pg_ctl. Output is discarded: nobody is left to read it.
const GUARD_SCRIPT: &str =
    r#"read _ignored; "$0" -D "$1" -m immediate -w -t 30 stop >/dev/null 2>&1; rm -rf "$2""#;

/// The running guard; dropping it without [`Watchdog::disarm`] triggers the cleanup.
#[derive(Debug)]
pub(crate) struct Watchdog {
    child: Child,
}

impl Watchdog {
    /// Starts the guard for the cluster in `root` with its data directory `data_dir`.
    pub(crate) fn spawn(
        tools: &PgTools,
        root: &Path,
        data_dir: &Path,
    ) -> Result<Watchdog, ClusterError> {
        let mut cmd = tools.command_as_owner("/bin/sh", Path::new("/"));
        cmd.arg("-c")
            .arg(GUARD_SCRIPT)
            .arg(tools.bin("pg_ctl"))
            .arg(data_dir)
            .arg(root)
            // std creates the pipe close-on-exec, so no other child (the postmaster, other
            // clusters' guards) holds the write end open.
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            // Its own process group: a terminal Ctrl-C aimed at the test run must not
            // kill the guard before it has done its job.
            cmd.process_group(0);
        }
        let child = cmd.spawn().map_err(|source| ClusterError::Spawn {
            program: "/bin/sh".into(),
            source,
        })?;
        Ok(Watchdog { child })
    }

    /// Stops the guard without letting it clean up: the caller is about to do that.
    pub(crate) fn disarm(mut self) {
        // Kill before closing stdin, or the guard would start its cleanup.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
