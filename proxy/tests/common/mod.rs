//! Shared integration-test scaffolding: starting the real `pgvigil` binary in front of a
//! throwaway cluster, reading its audit log and metrics. Each test file uses what it needs.
#![allow(dead_code)]

pub mod java;

use pgvigil::certs::{write_dev_certs, DevCerts};
use pgvigil::demo::cluster::{Cluster, ClusterOptions, HbaAuth};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A cluster with TLS on and scram as the default method (the common case).
pub fn cluster() -> Cluster {
    cluster_with(true, HbaAuth::ScramSha256)
}

/// A cluster with the given TLS and default auth method.
pub fn cluster_with(tls: bool, auth: HbaAuth) -> Cluster {
    Cluster::start(ClusterOptions {
        tls,
        auth,
        ..ClusterOptions::default()
    })
    .unwrap_or_else(|e| panic!("cannot start PostgreSQL: {e}"))
}

/// How to configure the proxy under test.
#[derive(Clone)]
pub struct ProxyOptions {
    /// `[listen.tls] mode`.
    pub tls_mode: &'static str,
    /// `[auth] mode`.
    pub auth_mode: &'static str,
    /// `[upstream] sslmode`; verify-* uses the cluster's CA.
    pub sslmode: &'static str,
    pub max_client_conn: usize,
    pub startup_timeout: &'static str,
    pub shutdown_timeout: &'static str,
    pub proxy_protocol: bool,
    /// `[listen] proxy_trusted` as TOML; `None` trusts 127.0.0.1 when `proxy_protocol` is on.
    pub proxy_trusted: Option<&'static str>,
    /// Extra keys for the `[listen]` table (e.g. `max_startup_per_addr = 4`).
    pub listen: String,
    /// Extra keys for the `[upstream]` table (e.g. `max_auth_conn = 4`).
    pub upstream: String,
    /// CN of the generated client certificate.
    pub client_cert_user: &'static str,
    /// Extra TOML appended to the config (e.g. `[databases.x]` tables).
    pub extra: String,
    /// Extra keys for the `[audit]` table (e.g. `log_noise = true`).
    pub audit: String,
    /// `[audit] log`, relative to the proxy's folder (or absolute).
    pub audit_log: String,
    /// Extra keys for the `[auth]` table (e.g. `auth_file = "/path/userlist.txt"`).
    pub auth: String,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        ProxyOptions {
            tls_mode: "allow",
            auth_mode: "password",
            sslmode: "prefer",
            max_client_conn: 1000,
            startup_timeout: "10s",
            shutdown_timeout: "5s",
            proxy_protocol: false,
            proxy_trusted: None,
            listen: String::new(),
            upstream: String::new(),
            client_cert_user: "app_user",
            extra: String::new(),
            audit: String::new(),
            audit_log: "audit.jsonl".into(),
            auth: String::new(),
        }
    }
}

/// A running `pgvigil run`, killed on drop.
pub struct Proxy {
    child: Option<Child>,
    pub port: u16,
    pub metrics_port: u16,
    pub dir: tempfile::TempDir,
    pub certs: DevCerts,
    pub config_path: PathBuf,
    pub audit_path: PathBuf,
    pub log_path: PathBuf,
}

/// A free TCP port on 127.0.0.1 (best effort: another process could take it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

impl Proxy {
    /// Starts the proxy in front of `cluster`, waiting until it accepts connections.
    pub fn start(cluster: &Cluster, opts: ProxyOptions) -> Proxy {
        Proxy::start_upstream(cluster.port(), cluster.ca_cert(), opts)
    }

    /// Starts the proxy in front of whatever listens on 127.0.0.1:`upstream_port` (a real
    /// cluster, or a hostile server in the tests that play one).
    pub fn start_upstream(
        upstream_port: u16,
        upstream_ca: Option<&Path>,
        opts: ProxyOptions,
    ) -> Proxy {
        let dir = tempfile::tempdir().expect("temp dir");
        let certs = write_dev_certs(
            &dir.path().join("certs"),
            &["localhost".to_string(), "127.0.0.1".to_string()],
            opts.client_cert_user,
        )
        .expect("certs");
        for attempt in 0..3 {
            let port = free_port();
            let metrics_port = free_port();
            let config_path = dir.path().join("pgvigil.toml");
            let audit_path = dir.path().join(&opts.audit_log);
            let log_path = dir.path().join(format!("pgvigil-{attempt}.log"));
            let ca = upstream_ca
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            let text = format!(
                r#"[listen]
addr = "127.0.0.1:{port}"
max_client_conn = {max}
startup_timeout = "{st}"
shutdown_timeout = "{sd}"
proxy_protocol = {pp}
proxy_trusted = {pt}
{listen}

[listen.tls]
mode = "{tls_mode}"
cert_file = "certs/server.crt"
key_file = "certs/server.key"
ca_file = "certs/ca.crt"

[upstream]
host = "127.0.0.1"
port = {upport}
sslmode = "{sslmode}"
ca_file = "{ca}"
connect_timeout = "5s"
{upstream}

[auth]
mode = "{auth}"
{auth_extra}

[audit]
log = "{audit_log}"
{audit}

[metrics]
listen = "127.0.0.1:{metrics_port}"

{extra}
"#,
                max = opts.max_client_conn,
                st = opts.startup_timeout,
                sd = opts.shutdown_timeout,
                pp = opts.proxy_protocol,
                pt = opts.proxy_trusted.unwrap_or(if opts.proxy_protocol {
                    r#"["127.0.0.1/32"]"#
                } else {
                    "[]"
                }),
                listen = opts.listen,
                upstream = opts.upstream,
                tls_mode = opts.tls_mode,
                upport = upstream_port,
                sslmode = opts.sslmode,
                auth = opts.auth_mode,
                auth_extra = opts.auth,
                extra = opts.extra,
                audit = opts.audit,
                audit_log = opts.audit_log.clone(),
            );
            std::fs::write(&config_path, text).expect("write config");
            let mut child = spawn(&config_path, &log_path);
            match wait_ready(&mut child, port, Duration::from_secs(20)) {
                true => {
                    return Proxy {
                        child: Some(child),
                        port,
                        metrics_port,
                        dir,
                        certs,
                        config_path,
                        audit_path,
                        log_path,
                    }
                }
                false => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                    // A port taken between probe and bind is retried; anything else is a bug.
                    if !log.contains("cannot listen") || attempt == 2 {
                        panic!("pgvigil did not start:\n{log}");
                    }
                }
            }
        }
        unreachable!("three attempts either return or panic")
    }

    /// Kills the process with SIGKILL (no shutdown of any kind).
    pub fn kill_hard(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe {
                libc::kill(c.id() as i32, libc::SIGKILL);
            }
            let _ = c.wait();
        }
    }

    /// Starts the process again with the same config (after [`Proxy::kill_hard`] or
    /// [`Proxy::terminate`]); its stderr goes to a new log file.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart of a running proxy");
        let n = std::fs::read_dir(self.dir.path())
            .map(|d| d.count())
            .unwrap_or(0);
        self.log_path = self.dir.path().join(format!("pgvigil-restart-{n}.log"));
        let mut child = spawn(&self.config_path, &self.log_path);
        assert!(
            wait_ready(&mut child, self.port, Duration::from_secs(20)),
            "pgvigil did not restart:\n{}",
            self.log()
        );
        self.child = Some(child);
    }

    /// Findings written to `[alerts.file]` (`findings.jsonl` next to the config).
    pub fn findings(&self) -> Vec<serde_json::Value> {
        let text =
            std::fs::read_to_string(self.dir.path().join("findings.jsonl")).unwrap_or_default();
        complete_lines(&text)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad finding {l:?}: {e}")))
            .collect()
    }

    /// Waits until a finding of `rule_id` matching `pred` is in the findings file
    /// (generously: a busy 2-core machine can take long, and a pass returns at once).
    pub fn wait_finding(
        &self,
        rule_id: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(f) = self
                .findings()
                .into_iter()
                .find(|f| f["rule_id"] == rule_id && pred(f))
            {
                return f;
            }
            if Instant::now() > deadline {
                panic!(
                    "no {rule_id} finding; findings: {:#?}\nlog:\n{}",
                    self.findings(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// `pgvigil_findings_total` of one rule (counted when the rule fires, before the
    /// client gets its reply).
    pub fn fired(&self, rule_id: &str) -> f64 {
        self.metrics()
            .lines()
            .filter(|l| {
                l.starts_with("pgvigil_findings_total{")
                    && l.contains(&format!("rule_id=\"{rule_id}\""))
            })
            .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
            .sum()
    }

    /// The proxy's stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// A libpq connection string through the proxy.
    pub fn conninfo(&self, user: &str, password: &str, db: &str, extra: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={user} password={password} dbname={db} {extra}",
            self.port
        )
    }

    /// Every audit event written so far.
    pub fn audit_events(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(&self.audit_path).unwrap_or_default();
        complete_lines(&text)
            .lines()
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("bad audit line {l:?}: {e}"))
            })
            .collect()
    }

    /// Waits until an audit event matching `pred` appears (the writer is asynchronous).
    pub fn wait_event(
        &self,
        what: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(e) = self.audit_events().into_iter().find(|e| pred(e)) {
                return e;
            }
            if Instant::now() > deadline {
                panic!(
                    "no audit event {what}; events: {:#?}\nlog:\n{}",
                    self.audit_events(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The Prometheus exposition text.
    pub fn metrics(&self) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.metrics_port)).expect("metrics port");
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .expect("metrics request");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }

    /// The value of one metric line (exact name with labels as printed), or 0.
    pub fn metric(&self, name_with_labels: &str) -> f64 {
        self.metrics()
            .lines()
            .find_map(|l| {
                l.strip_prefix(name_with_labels)
                    .and_then(|v| v.trim().parse().ok())
            })
            .unwrap_or(0.0)
    }

    /// Sends SIGTERM and waits (bounded) for exit; returns whether it exited in time.
    pub fn terminate(&mut self, limit: Duration) -> bool {
        let Some(child) = self.child.as_mut() else {
            return true;
        };
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                self.child = None;
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Sends `sig` to the process.
    pub fn signal(&self, sig: i32) {
        if let Some(child) = self.child.as_ref() {
            unsafe {
                libc::kill(child.id() as i32, sig);
            }
        }
    }

    /// Sends SIGHUP (reload the configuration).
    pub fn sighup(&self) {
        if let Some(child) = self.child.as_ref() {
            unsafe {
                libc::kill(child.id() as i32, libc::SIGHUP);
            }
        }
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The process's resident memory (VmRSS, KiB).
    pub fn rss_kib(&self) -> u64 {
        let pid = self.pid().expect("pgvigil is running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn ca_file(&self) -> &Path {
        &self.certs.ca_cert
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The complete lines of a file being appended to: a reader can catch the last line
/// half-written, and only a line ending in a newline is one.
fn complete_lines(text: &str) -> &str {
    match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    }
}

fn spawn(config_path: &Path, log_path: &Path) -> Child {
    let log = std::fs::File::create(log_path).expect("log file");
    Command::new(env!("CARGO_BIN_EXE_pgvigil"))
        .args(["run", "--config"])
        .arg(config_path)
        .env("PGVIGIL_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn pgvigil")
}

fn wait_ready(child: &mut Child, port: u16, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Runs psql with a connection string and SQL; returns (success, stdout, stderr).
pub fn psql(conninfo: &str, sql: &str) -> (bool, String, String) {
    let out = Command::new("psql")
        .args([
            "-X",
            "-w",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            conninfo,
            "-c",
            sql,
        ])
        .env("PGCONNECT_TIMEOUT", "20")
        .stdin(Stdio::null())
        .output()
        .expect("run psql");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

// ---- Raw wire-protocol helpers (hostile-input, PROXY protocol and lifecycle tests) ----

/// A protocol 3.0 StartupMessage with the given parameters, length word included.
pub fn startup_packet(params: &[(&str, &str)]) -> Vec<u8> {
    let mut body = (3u32 << 16).to_be_bytes().to_vec();
    for (k, v) in params {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut out = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    out.extend(body);
    out
}

/// A tagged frontend message (tag, length, body).
pub fn frontend_msg(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// Reads one backend message as (tag, body). Lengths below 4 or above 1 MiB are errors.
pub fn read_msg<R: Read>(r: &mut R) -> std::io::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 5];
    r.read_exact(&mut head)?;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if !(4..=1 << 20).contains(&len) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("backend message {:?} with length {len}", head[0] as char),
        ));
    }
    let mut body = vec![0u8; len - 4];
    r.read_exact(&mut body)?;
    Ok((head[0], body))
}

/// The fields of an ErrorResponse/NoticeResponse body by code ('C' SQLSTATE, 'M', 'H', ...).
pub fn error_fields(body: &[u8]) -> std::collections::HashMap<char, String> {
    body.split(|&b| b == 0)
        .filter(|f| !f.is_empty())
        .map(|f| (f[0] as char, String::from_utf8_lossy(&f[1..]).into_owned()))
        .collect()
}

/// A plain TCP connection to `port` on 127.0.0.1 with 10 s read/write timeouts.
pub fn raw_connect(port: u16) -> TcpStream {
    let s =
        TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("connect {port}: {e}"));
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(10)));
    let _ = s.set_nodelay(true);
    s
}

/// Completes a login on a stream whose StartupMessage was already sent: answers a
/// cleartext password request with `password` and reads up to ReadyForQuery. Returns the
/// ErrorResponse fields if the login fails.
pub fn finish_raw_login<S: Read + Write>(
    s: &mut S,
    password: &str,
) -> Result<(), std::collections::HashMap<char, String>> {
    loop {
        let (tag, body) = read_msg(s).unwrap_or_else(|e| panic!("reading the login reply: {e}"));
        match tag {
            b'R' => match body.get(..4) {
                Some([0, 0, 0, 0]) => {}
                Some([0, 0, 0, 3]) => {
                    let mut pw = password.as_bytes().to_vec();
                    pw.push(0);
                    s.write_all(&frontend_msg(b'p', &pw))
                        .expect("send password");
                }
                other => panic!("unexpected authentication request {other:?}"),
            },
            b'E' => return Err(error_fields(&body)),
            b'Z' => return Ok(()),
            _ => {}
        }
    }
}

/// Logs in over plaintext (StartupMessage, cleartext password if asked, up to
/// ReadyForQuery) and returns the open session.
pub fn raw_login(port: u16, user: &str, password: &str, db: &str) -> TcpStream {
    let mut s = raw_connect(port);
    s.write_all(&startup_packet(&[("user", user), ("database", db)]))
        .expect("send startup");
    if let Err(e) = finish_raw_login(&mut s, password) {
        panic!("raw login as {user} failed: {e:?}");
    }
    s
}

/// Runs a simple query on a raw session; returns the first column of each row, or the
/// ErrorResponse fields.
pub fn raw_query<S: Read + Write>(
    s: &mut S,
    sql: &str,
) -> Result<Vec<String>, std::collections::HashMap<char, String>> {
    let mut q = sql.as_bytes().to_vec();
    q.push(0);
    s.write_all(&frontend_msg(b'Q', &q)).expect("send query");
    let mut rows = Vec::new();
    let mut error = None;
    loop {
        let (tag, body) = read_msg(s).unwrap_or_else(|e| panic!("reading the query reply: {e}"));
        match tag {
            b'D' if body.len() >= 6 => {
                let len = i32::from_be_bytes([body[2], body[3], body[4], body[5]]);
                let end = 6 + len.max(0) as usize;
                rows.push(
                    String::from_utf8_lossy(body.get(6..end).unwrap_or_default()).into_owned(),
                );
            }
            b'E' => error = Some(error_fields(&body)),
            b'Z' => return error.map_or(Ok(rows), Err),
            _ => {}
        }
    }
}

/// Reads until the peer closes the connection (EOF or reset) or `limit` passes. Returns
/// the bytes that arrived and, if it closed, after how long.
pub fn read_until_closed(s: &mut TcpStream, limit: Duration) -> (Vec<u8>, Option<Duration>) {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while start.elapsed() < limit {
        let left = limit
            .saturating_sub(start.elapsed())
            .max(Duration::from_millis(1));
        let _ = s.set_read_timeout(Some(left.min(Duration::from_millis(200))));
        match s.read(&mut buf) {
            Ok(0) => return (got, Some(start.elapsed())),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // Reset, aborted: the proxy closed with our bytes unread.
            Err(_) => return (got, Some(start.elapsed())),
        }
    }
    (got, None)
}

/// Waits (bounded) until `cond` holds; panics with `what` otherwise.
pub fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        if Instant::now() > deadline {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The proxy survived and still serves a real client.
pub fn assert_healthy(proxy: &mut Proxy) {
    assert!(proxy.is_running(), "the proxy died:\n{}", proxy.log());
    let (ok, out, err) = psql(
        &proxy.conninfo("md5_user", "md5_pass", "postgres", "sslmode=prefer"),
        "select current_user",
    );
    assert!(
        ok,
        "psql after hostile input failed: {err}\nproxy log:\n{}",
        proxy.log()
    );
    assert_eq!(out, "md5_user");
}

/// Whatever arrived before the close is nothing, or a single FATAL ErrorResponse.
pub fn assert_nothing_or_fatal(what: &str, got: &[u8]) {
    if got.is_empty() {
        return;
    }
    let (tag, body) =
        read_msg(&mut &got[..]).unwrap_or_else(|e| panic!("[{what}] reply {got:?}: {e}"));
    assert_eq!(tag, b'E', "[{what}] unexpected reply {got:?}");
    assert_eq!(
        error_fields(&body).get(&'V').map(String::as_str),
        Some("FATAL"),
        "[{what}] {got:?}"
    );
}

pub fn metric_at_least(proxy: &Proxy, name: &str, n: f64) {
    wait_until(&format!("{name} >= {n}"), Duration::from_secs(10), || {
        proxy.metric(name) >= n
    });
}

/// A tmpfs of `size` mounted on a fresh folder, unmounted on drop.
pub struct SmallDisk {
    pub dir: tempfile::TempDir,
}

impl SmallDisk {
    pub fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "cannot mount a tmpfs (the tests run as root)");
        SmallDisk { dir }
    }

    /// Fills the disk to the last byte.
    pub fn fill(&self) {
        let _ = Command::new("dd")
            .args(["if=/dev/zero", "bs=1k", "count=100000"])
            .arg(format!("of={}", self.dir.path().join("filler").display()))
            .stderr(Stdio::null())
            .status();
    }

    pub fn free(&self) {
        std::fs::remove_file(self.dir.path().join("filler")).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}
