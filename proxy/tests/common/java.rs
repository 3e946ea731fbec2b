//! The Java side of the JDBC tests: finding javac, java and the driver jar, compiling a
//! client program from tests/jdbc/, and running it with a time limit.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const DEFAULT_JAR: &str = "/usr/share/java/postgresql.jar";

/// A program on PATH.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// javac, java and the driver jar, or the reason one is missing.
pub fn java_tools() -> Result<(PathBuf, PathBuf, PathBuf), String> {
    let javac = on_path("javac").ok_or("javac not found on PATH (install default-jdk-headless)")?;
    let java = on_path("java").ok_or("java not found on PATH (install default-jdk-headless)")?;
    let jar = std::env::var_os("PGVIGIL_JDBC_JAR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_JAR));
    if !jar.is_file() {
        return Err(format!(
            "PostgreSQL JDBC driver not found at {} (install libpostgresql-jdbc-java or set PGVIGIL_JDBC_JAR)",
            jar.display()
        ));
    }
    Ok((javac, java, jar))
}

/// The toolchain, or `None` after printing why the test is skipped. Under CI=true a missing
/// toolchain fails the test instead.
pub fn java_tools_or_skip(what: &str) -> Option<(PathBuf, PathBuf, PathBuf)> {
    match java_tools() {
        Ok(t) => Some(t),
        Err(why) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{what} cannot run under CI: {why}");
            }
            eprintln!("SKIPPED {what}: {why}");
            None
        }
    }
}

/// Runs a command with a time limit; returns (success, stdout + stderr).
pub fn run_bounded(cmd: &mut Command, limit: Duration) -> (bool, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let out_path = dir.path().join("out");
    let out = std::fs::File::create(&out_path).expect("output file");
    let err = out.try_clone().expect("clone output file");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", cmd.get_program()));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = std::fs::read_to_string(&out_path).unwrap_or_default();
    match status {
        Some(s) => (s.success(), text),
        None => (false, format!("timed out after {limit:?}\n{text}")),
    }
}

/// Compiles tests/jdbc/`file` into `classes`.
pub fn compile(javac: &Path, jar: &Path, classes: &Path, file: &str) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/jdbc")
        .join(file);
    let (ok, out) = run_bounded(
        Command::new(javac)
            .arg("-cp")
            .arg(jar)
            .arg("-d")
            .arg(classes)
            .arg(&src),
        Duration::from_secs(120),
    );
    assert!(ok, "javac {file} failed:\n{out}");
}
