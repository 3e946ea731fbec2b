//! Finding the PostgreSQL binaries and running them as the right user.
//!
//! initdb and the server refuse to run as root, so when the harness runs as root (CI
//! containers, this development machine) the server-side tools run as the `postgres`
//! system user, and everything they touch is handed to that user. Client tools (psql,
//! pgbench) run as whoever we are.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::cluster::ClusterError;

/// Environment variable naming the PostgreSQL `bin` directory to use.
pub const PG_BIN_ENV: &str = "PGVIGIL_PG_BIN";
/// Where Debian and Ubuntu install server binaries, one directory per major version.
const DEBIAN_PG_ROOT: &str = "/usr/lib/postgresql";
/// System user that owns and runs the server when we are root.
const SERVER_USER: &str = "postgres";

/// A user and group id to run server tools as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Owner {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

/// The PostgreSQL installation in use and the user its server-side tools run as.
#[derive(Debug, Clone)]
pub(crate) struct PgTools {
    bin_dir: PathBuf,
    /// `Some` when we are root and must switch to the `postgres` user.
    owner: Option<Owner>,
}

impl PgTools {
    /// Locates the binaries (see [`find_bin_dir`]) and decides which user runs the server.
    pub(crate) fn find() -> Result<PgTools, ClusterError> {
        let bin_dir = find_bin_dir()?;
        let owner = if is_root() {
            Some(lookup_user(SERVER_USER).ok_or(ClusterError::NoPostgresUser)?)
        } else {
            None
        };
        Ok(PgTools { bin_dir, owner })
    }

    /// The directory holding initdb, pg_ctl, postgres.
    pub(crate) fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// Path of a tool from the same installation; client tools that a server-only install
    /// lacks fall back to `PATH`.
    pub(crate) fn bin(&self, name: &str) -> PathBuf {
        let local = self.bin_dir.join(name);
        if local.is_file() {
            return local;
        }
        search_path(name).unwrap_or(local)
    }

    /// A command for a server-side tool (initdb, pg_ctl, pg_isready), run as the server
    /// owner from `cwd`, which that user must be able to enter.
    pub(crate) fn server_command(&self, name: &str, cwd: &Path) -> Command {
        self.command_as_owner(self.bin(name), cwd)
    }

    /// Any program, run as the server owner from `cwd` with a clean `PG*` environment.
    pub(crate) fn command_as_owner(&self, program: impl AsRef<OsStr>, cwd: &Path) -> Command {
        let mut cmd = clean_command(program);
        cmd.current_dir(cwd);
        // English messages, so start failures can be recognised in the log.
        cmd.env("LC_ALL", "C");
        #[cfg(unix)]
        if let Some(owner) = self.owner {
            use std::os::unix::process::CommandExt;
            // std drops the supplementary groups when a root process sets the uid.
            cmd.uid(owner.uid).gid(owner.gid);
            cmd.env("HOME", cwd)
                .env("USER", SERVER_USER)
                .env("LOGNAME", SERVER_USER);
        }
        cmd
    }

    /// A command for a client tool run as the current user, with the caller's `PG*`
    /// variables removed so that a developer's PGHOST or PGSSLMODE cannot redirect it.
    pub(crate) fn client_command(&self, name: &str) -> Command {
        clean_command(self.bin(name))
    }

    /// Hands `path` to the server owner (no-op when not root).
    pub(crate) fn chown(&self, path: &Path) -> Result<(), ClusterError> {
        #[cfg(unix)]
        if let Some(owner) = self.owner {
            std::os::unix::fs::chown(path, Some(owner.uid), Some(owner.gid)).map_err(|source| {
                ClusterError::Io {
                    action: format!("give {} to the {SERVER_USER} user", path.display()),
                    source,
                }
            })?;
        }
        Ok(())
    }
}

/// A command without the caller's `PG*` variables and with stdin from /dev/null.
fn clean_command(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            cmd.env_remove(key);
        }
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// Runs `cmd` to completion and fails with its output when it exits non-zero.
pub(crate) fn run(cmd: &mut Command) -> Result<Output, ClusterError> {
    let program = PathBuf::from(cmd.get_program());
    let output = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|source| ClusterError::Spawn {
            program: program.clone(),
            source,
        })?;
    if !output.status.success() {
        return Err(ClusterError::CommandFailed {
            program: program.display().to_string(),
            status: output.status,
            output: combined_output(&output),
        });
    }
    Ok(output)
}

/// stderr then stdout, trimmed, for error messages.
pub(crate) fn combined_output(output: &Output) -> String {
    let mut text = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !stdout.trim().is_empty() {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(stdout.trim());
    }
    text
}

/// The PostgreSQL `bin` directory: `$PGVIGIL_PG_BIN`, else the newest
/// `/usr/lib/postgresql/*/bin`, else `pg_config --bindir`, else the directory of the
/// first `initdb` on `PATH`.
pub fn find_bin_dir() -> Result<PathBuf, ClusterError> {
    if let Some(dir) = std::env::var_os(PG_BIN_ENV).filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        if has_initdb(&dir) {
            return Ok(dir);
        }
        return Err(ClusterError::BadPgBin { dir });
    }
    if let Some(dir) = newest_debian_bin_dir(Path::new(DEBIAN_PG_ROOT)) {
        return Ok(dir);
    }
    if let Some(dir) = pg_config_bindir() {
        return Ok(dir);
    }
    if let Some(dir) = search_path("initdb").and_then(|p| p.parent().map(Path::to_path_buf)) {
        return Ok(dir);
    }
    Err(ClusterError::BinariesNotFound)
}

fn has_initdb(dir: &Path) -> bool {
    dir.join("initdb").is_file()
}

/// The highest-versioned `<root>/<version>/bin` that contains initdb.
fn newest_debian_bin_dir(root: &Path) -> Option<PathBuf> {
    let entries = std::fs::read_dir(root).ok()?;
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = parse_version(&e.file_name())?;
            let bin = e.path().join("bin");
            has_initdb(&bin).then_some((version, bin))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, bin)| bin)
}

/// "15" -> [15], "9.6" -> [9, 6]; anything else is not a version directory.
fn parse_version(name: &OsStr) -> Option<Vec<u32>> {
    name.to_str()?
        .split('.')
        .map(|part| part.parse().ok())
        .collect()
}

fn pg_config_bindir() -> Option<PathBuf> {
    let output = Command::new("pg_config")
        .arg("--bindir")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    has_initdb(&dir).then_some(dir)
}

pub(crate) fn search_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Whether this process runs as root, in which case PostgreSQL refuses to run directly.
pub(crate) fn is_root() -> bool {
    #[cfg(unix)]
    {
        // SAFETY: geteuid has no preconditions and cannot fail.
        unsafe { libc::geteuid() == 0 }
    }
    #[cfg(not(unix))]
    {
        false
    }
}

/// Looks up a user's uid and primary gid (thread-safe, unlike getpwnam).
#[cfg(unix)]
fn lookup_user(name: &str) -> Option<Owner> {
    use std::ffi::CString;
    let cname = CString::new(name).ok()?;
    let mut buf: Vec<libc::c_char> = vec![0; 16 * 1024];
    // SAFETY: passwd is a plain C struct; all-zero is a valid (empty) value.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the duration of the call and `buf.len()` is the
    // real size of `buf`; only the integer fields of `pwd` are read afterwards.
    let rc = unsafe {
        libc::getpwnam_r(
            cname.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() {
        return None;
    }
    Some(Owner {
        uid: pwd.pw_uid,
        gid: pwd.pw_gid,
    })
}

#[cfg(not(unix))]
fn lookup_user(_name: &str) -> Option<Owner> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_numerically() {
        let dir = tempfile::tempdir().unwrap();
        for v in ["9.6", "15", "10", "notaversion"] {
            let bin = dir.path().join(v).join("bin");
            std::fs::create_dir_all(&bin).unwrap();
            std::fs::write(bin.join("initdb"), "").unwrap();
        }
        // A newer directory without initdb (client-only install) is skipped.
        std::fs::create_dir_all(dir.path().join("16/bin")).unwrap();
        assert_eq!(
            newest_debian_bin_dir(dir.path()),
            Some(dir.path().join("15/bin"))
        );
    }

    #[cfg(unix)]
    #[test]
    fn looks_up_root() {
        assert_eq!(lookup_user("root"), Some(Owner { uid: 0, gid: 0 }));
        assert_eq!(lookup_user("no-such-user-pgvigil"), None);
    }
}
