//! Child processes of the load test and the plumbing around them: a guard that stops a
//! child however the run ends, bounded readiness waits, running commands with a time
//! limit, Ctrl-C handling, the file-descriptor limit, and the `postgres` system user that
//! PgBouncer must run as when we are root.
//!
//! Every long-lived child (pgvigil, PgBouncer) is held by a [`ChildGuard`]: dropping it
//! (normal return, `?` error, panic unwinding) stops the child, and on Linux the child also
//! gets SIGKILL from the kernel if this process dies without unwinding
//! (`PR_SET_PDEATHSIG`). The PostgreSQL clusters have their own guard (`Cluster`'s Drop
//! and watchdog).
//!
//! `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits, so children
//! must be spawned from the main thread, which lives as long as the run.

use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

/// Set by the SIGINT/SIGTERM handler; checked between steps so the run unwinds cleanly.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// The run's scratch directory (see [`RunDir`]); temporary directories go under it.
static RUN_DIR: OnceLock<PathBuf> = OnceLock::new();

/// How often waits on a child or a port look again.
const POLL: Duration = Duration::from_millis(20);
/// How long a child gets to exit after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(3);

extern "C" fn on_signal(_sig: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Makes SIGINT and SIGTERM set a flag instead of killing the process, so that Drop guards
/// run. Children in our process group get Ctrl-C's SIGINT themselves as well.
pub fn install_signal_handlers() -> Result<()> {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: sigaction with a zeroed struct, an empty mask and a handler that only
        // stores to an atomic.
        let rc = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error()).context("cannot install a signal handler");
        }
    }
    Ok(())
}

/// Whether Ctrl-C (or SIGTERM) was received.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Fails when the run was interrupted, to unwind through the guards.
pub fn check_interrupted() -> Result<()> {
    if interrupted() {
        bail!("interrupted");
    }
    Ok(())
}

/// Raises this process's soft `RLIMIT_NOFILE` (and, as root, the hard limit) to at least
/// `wanted` when possible. Children inherit it. Returns the soft limit now in force.
pub fn raise_nofile_limit(wanted: u64) -> Result<u64> {
    // SAFETY: getrlimit/setrlimit write only into the struct we pass.
    let mut lim: libc::rlimit = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error()).context("cannot read RLIMIT_NOFILE");
    }
    let wanted = wanted as libc::rlim_t;
    if lim.rlim_max < wanted && is_root() {
        // The kernel refuses hard limits above fs.nr_open.
        let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse::<libc::rlim_t>().ok())
            .unwrap_or(lim.rlim_max);
        let raised = libc::rlimit {
            rlim_cur: wanted.min(nr_open),
            rlim_max: wanted.min(nr_open).max(lim.rlim_max),
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim = raised;
        }
    }
    let target = libc::rlimit {
        rlim_cur: lim.rlim_max.min(wanted.max(lim.rlim_cur)),
        rlim_max: lim.rlim_max,
    };
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &target) } != 0 {
        return Err(std::io::Error::last_os_error()).context("cannot raise RLIMIT_NOFILE");
    }
    Ok(target.rlim_cur as u64)
}

/// One directory under /tmp holding every temporary file of the run (configs, certificates,
/// logs, pgbench output). Dropping it removes it; if this process dies without dropping it
/// (SIGKILL), a guard `sh` blocked reading a pipe only we hold sees end-of-file and removes
/// it, as the cluster harness's watchdog does for clusters.
#[derive(Debug)]
pub struct RunDir {
    dir: Option<tempfile::TempDir>,
    guard: Option<Child>,
}

impl RunDir {
    /// Creates the directory (traversable by the `postgres` user, which runs PgBouncer
    /// from a subdirectory) and its guard, and makes it the parent of [`scratch_dir`]s.
    pub fn create() -> Result<RunDir> {
        use std::os::unix::fs::PermissionsExt;
        use std::os::unix::process::CommandExt;
        let dir = tempfile::Builder::new()
            .prefix("pgvigil-loadtest-")
            .tempdir_in("/tmp")
            .context("cannot create a temporary directory in /tmp")?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711))
            .with_context(|| format!("cannot set permissions on {}", dir.path().display()))?;
        let guard = Command::new("/bin/sh")
            .arg("-c")
            .arg(r#"read _ignored; rm -rf "$0""#)
            .arg(dir.path())
            // std creates the pipe close-on-exec: no other child holds its write end.
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so a terminal Ctrl-C does not kill it first.
            .process_group(0)
            .spawn()
            .context("cannot start the clean-up guard (/bin/sh)")?;
        let _ = RUN_DIR.set(dir.path().to_path_buf());
        Ok(RunDir {
            dir: Some(dir),
            guard: Some(guard),
        })
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        // Kill the guard before its stdin closes, then clean up ourselves.
        if let Some(mut guard) = self.guard.take() {
            let _ = guard.kill();
            let _ = guard.wait();
        }
        if let Some(dir) = self.dir.take() {
            let path = dir.path().to_path_buf();
            if let Err(e) = dir.close() {
                eprintln!("warning: cannot remove {}: {e}", path.display());
            }
        }
    }
}

/// A new private temporary directory under the run's [`RunDir`] (or /tmp before one
/// exists), removed when dropped.
pub fn scratch_dir(prefix: &str) -> Result<tempfile::TempDir> {
    let base = RUN_DIR
        .get()
        .cloned()
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(&base)
        .with_context(|| format!("cannot create a temporary directory in {}", base.display()))
}

/// Whether we run as root (PgBouncer and PostgreSQL refuse to).
pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The uid and gid of the `postgres` system user, which runs PgBouncer when we are root.
pub fn postgres_user() -> Result<(u32, u32)> {
    let name = std::ffi::CString::new("postgres").context("user name")?;
    let mut buf: Vec<libc::c_char> = vec![0; 16 * 1024];
    // SAFETY: passwd is plain data; zeroed is a valid empty value.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: all pointers are valid for the call; buf.len() is buf's real size.
    let rc = unsafe {
        libc::getpwnam_r(
            name.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() {
        bail!(
            "running as root but there is no `postgres` system user to run PgBouncer as \
             (install the postgresql package, or run the load test as a non-root user)"
        );
    }
    Ok((pwd.pw_uid, pwd.pw_gid))
}

/// Hands `path` to `owner` (uid, gid).
pub fn chown(path: &Path, owner: (u32, u32)) -> Result<()> {
    std::os::unix::fs::chown(path, Some(owner.0), Some(owner.1))
        .with_context(|| format!("cannot give {} to the postgres user", path.display()))
}

/// A port on 127.0.0.1 that was free a moment ago (callers retry on conflict).
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot bind 127.0.0.1:0")?;
    Ok(listener
        .local_addr()
        .context("probe socket address")?
        .port())
}

/// Removes the caller's `PG*` variables so a developer's PGHOST or PGSSLMODE cannot
/// redirect a client tool, and sets stdin to /dev/null.
pub fn clean_env(cmd: &mut Command) -> &mut Command {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            cmd.env_remove(key);
        }
    }
    cmd.stdin(Stdio::null())
}

/// Asks the kernel to SIGKILL the child when this thread dies (see the module docs).
fn die_with_parent(cmd: &mut Command) {
    let parent = std::process::id();
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe
    // calls (prctl, getppid) without allocating. std runs it after any uid/gid switch,
    // which would otherwise clear the setting.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if libc::getppid() as u32 != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// A long-lived child process, stopped when dropped.
#[derive(Debug)]
pub struct ChildGuard {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl ChildGuard {
    /// Spawns `cmd` with stdout and stderr going to `log`, and asks the kernel to kill it
    /// if we die. Call from the main thread only (see the module docs).
    pub fn spawn(name: &str, cmd: &mut Command, log: &Path) -> Result<ChildGuard> {
        let out = File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
        let err = out
            .try_clone()
            .with_context(|| format!("cannot reopen {}", log.display()))?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        die_with_parent(cmd);
        let child = cmd.spawn().with_context(|| {
            format!(
                "cannot start {name} ({})",
                cmd.get_program().to_string_lossy()
            )
        })?;
        Ok(ChildGuard {
            name: name.to_owned(),
            child: Some(child),
            log: log.to_owned(),
        })
    }

    /// The child's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The last `lines` lines of the child's output.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log, lines)
    }

    /// Everything the child printed so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the child is still running (its exit status otherwise).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Waits until the child accepts TCP connections on 127.0.0.1:`port`. Fails as soon as
    /// the child exits, or after `limit`.
    pub fn wait_listening(&mut self, port: u16, limit: Duration) -> Result<()> {
        let started = Instant::now();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        loop {
            check_interrupted()?;
            if let Some(status) = self.exited() {
                bail!(
                    "{} exited ({status}) before listening on port {port}; its output:\n{}",
                    self.name,
                    self.log_tail(30)
                );
            }
            if TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok() {
                return Ok(());
            }
            if started.elapsed() > limit {
                bail!(
                    "{} did not listen on port {port} within {limit:?}; its output:\n{}",
                    self.name,
                    self.log_tail(30)
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// SIGTERM, a bounded wait, then SIGKILL. Never panics (runs from Drop).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        // SAFETY: kill has no memory-safety preconditions; the pid is our own child, not
        // yet reaped, so it cannot have been reused.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(POLL);
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What a command run to completion produced.
#[derive(Debug)]
pub struct Finished {
    /// Exit status.
    pub status: ExitStatus,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs a short-lived command (pgbench, psql) with its output in files under `scratch`,
/// killing it after `limit` or on Ctrl-C.
pub fn run_bounded(cmd: &mut Command, scratch: &Path, limit: Duration) -> Result<Finished> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let out_path = scratch.join("cmd.stdout");
    let err_path = scratch.join("cmd.stderr");
    let out =
        File::create(&out_path).with_context(|| format!("cannot create {}", out_path.display()))?;
    let err =
        File::create(&err_path).with_context(|| format!("cannot create {}", err_path.display()))?;
    cmd.stdout(out).stderr(err);
    die_with_parent(cmd);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot run {program}"))?;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child
            .try_wait()
            .with_context(|| format!("waiting for {program}"))?
        {
            break status;
        }
        if interrupted() || started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            check_interrupted()?;
            bail!("{program} did not finish within {limit:?} and was killed");
        }
        std::thread::sleep(POLL);
    };
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    Ok(Finished {
        status,
        stdout,
        stderr,
    })
}

/// The last `lines` lines of a text file (empty when unreadable).
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let start = text.len().saturating_sub(64 * 1024);
    let text = String::from_utf8_lossy(&text[start..]);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The workspace root (parent of this crate).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The pgvigil binary: `explicit` when given, else `<target>/release/pgvigil`, built first
/// with `cargo build --release -p pgvigil` unless `build` is false.
pub fn pgvigil_binary(explicit: Option<&Path>, build: bool) -> Result<PathBuf> {
    if let Some(path) = explicit {
        if !path.is_file() {
            bail!("--pgvigil {}: no such file", path.display());
        }
        return Ok(path.to_path_buf());
    }
    let root = workspace_root();
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|d| if d.is_absolute() { d } else { root.join(d) })
        .unwrap_or_else(|| root.join("target"));
    let bin = target_dir.join("release").join("pgvigil");
    if build {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        eprintln!("building pgvigil: cargo build --release -p pgvigil");
        let status = Command::new(&cargo)
            .args(["build", "--release", "-p", "pgvigil"])
            .current_dir(&root)
            .stdin(Stdio::null())
            .status()
            .with_context(|| {
                format!(
                    "cannot run {} to build pgvigil (install Rust from rustup.rs, or pass \
                     --pgvigil PATH to a built binary)",
                    cargo.to_string_lossy()
                )
            })?;
        if !status.success() {
            bail!("cargo build --release -p pgvigil failed ({status})");
        }
    }
    if !bin.is_file() {
        return Err(anyhow!(
            "{} not found: build it with `cargo build --release -p pgvigil` or pass --pgvigil PATH",
            bin.display()
        ));
    }
    Ok(bin)
}

/// Where PgBouncer is installed: `$PGBOUNCER`, `/usr/sbin/pgbouncer`, or `PATH`.
pub fn find_pgbouncer() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PGBOUNCER").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let debian = PathBuf::from("/usr/sbin/pgbouncer");
    if debian.is_file() {
        return Some(debian);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("pgbouncer"))
        .find(|p| p.is_file())
}

/// The first line a program prints for `--version` (empty when it cannot be run).
pub fn version_of(program: &Path) -> String {
    Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_owned()
        })
        .unwrap_or_default()
}
