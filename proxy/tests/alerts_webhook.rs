//! Webhook alert channels end to end: a finding fired through the real proxy by a real
//! statement travels through the durable outbox to a scripted local HTTP server.
//!
//! The server answers each request with the next scripted status (then 202), and records
//! the path, headers, body and arrival time of every request. The tests check what the
//! channel promises: retries on 429/5xx honouring `Retry-After`, the same `id` and
//! `dedup_key` on every attempt, the HMAC signature, dead letters for refusals, the
//! outbox surviving `kill -9`, the incident tools' payloads, `min_interval`, and a burst
//! of findings stored while the channels are busy all reaching every channel.
//!
//! Timing assertions are lower bounds only (a noisy machine can only make things later);
//! waits are generous.

mod common;

use common::{cluster, psql, wait_until, Proxy, ProxyOptions};
use pgvigil::demo::cluster::Cluster;
use serde_json::Value;
use std::collections::{BTreeMap, VecDeque};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

fn pg() -> &'static Cluster {
    static PG: OnceLock<Cluster> = OnceLock::new();
    PG.get_or_init(cluster)
}

/// How long to wait for anything asynchronous (delivery, retries, restarts).
const PATIENCE: Duration = Duration::from_secs(30);

// ---- A scripted HTTP/1.1 server ----

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Request {
    path: String,
    /// Lowercase names.
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
    /// When the whole body had arrived.
    at: Instant,
}

impl Request {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "request body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// A scripted answer: status and extra header lines.
type Answer = (u16, Vec<(&'static str, &'static str)>);

struct HookServer {
    port: u16,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HookServer {
    /// Listens on a free port of 127.0.0.1.
    fn start(script: Vec<Answer>) -> HookServer {
        HookServer::on(
            TcpListener::bind("127.0.0.1:0").expect("bind hook server"),
            script,
        )
    }

    /// Listens on 127.0.0.1:`port`.
    fn start_on(port: u16, script: Vec<Answer>) -> HookServer {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("bind hook server on {port}: {e}"));
        HookServer::on(listener, script)
    }

    fn on(listener: TcpListener, script: Vec<Answer>) -> HookServer {
        let port = listener.local_addr().expect("local addr").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s, st) = (requests.clone(), script.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let (r, s) = (r.clone(), s.clone());
                std::thread::spawn(move || serve(conn, &r, &s));
            }
        });
        HookServer {
            port,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests match `pred`; returns those that do.
    fn wait_for(&self, n: usize, pred: impl Fn(&Request) -> bool, proxy: &Proxy) -> Vec<Request> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let got: Vec<Request> = self.requests().into_iter().filter(|r| pred(r)).collect();
            if got.len() >= n {
                return got;
            }
            assert_nothing_lost(proxy);
            if Instant::now() > deadline {
                panic!(
                    "expected {n} webhook requests, got {}: {:#?}\nmetrics:\n{}\nlog:\n{}",
                    got.len(),
                    self.requests()
                        .iter()
                        .map(|r| (
                            r.path.clone(),
                            String::from_utf8_lossy(&r.body).into_owned()
                        ))
                        .collect::<Vec<_>>(),
                    alert_metrics(proxy),
                    proxy.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for HookServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads one request (headers, then a Content-Length body), records it and answers the
/// next scripted status (202 once the script is used up), closing the connection.
fn serve(mut conn: TcpStream, requests: &Mutex<Vec<Request>>, script: &Mutex<VecDeque<Answer>>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return, // a wake-up connect, or a client that gave up
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let path = request_line
        .split(' ')
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    assert!(
        !headers.contains_key("transfer-encoding"),
        "the scripted server only reads Content-Length bodies: {head}"
    );
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    body.truncate(len);
    // Record and take the answer under one lock, so the order of the recorded requests
    // is the order the script was consumed in.
    let (status, extra) = {
        let mut reqs = requests.lock().unwrap();
        reqs.push(Request {
            path,
            headers,
            body,
            at: Instant::now(),
        });
        script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or((202, Vec::new()))
    };
    let mut response =
        format!("HTTP/1.1 {status} Scripted\r\nContent-Length: 0\r\nConnection: close\r\n");
    for (k, v) in extra {
        response.push_str(&format!("{k}: {v}\r\n"));
    }
    response.push_str("\r\n");
    let _ = conn.write_all(response.as_bytes());
    let _ = conn.flush();
    let _ = conn.shutdown(std::net::Shutdown::Write);
    // Let the client read the answer and close first.
    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = conn.read(&mut chunk);
}

// ---- Proxy helpers ----

/// A proxy with `extra` config; human-data-change is off so one statement makes one
/// finding (an UPDATE would otherwise fire it too).
fn start(extra: &str) -> Proxy {
    Proxy::start(
        pg(),
        ProxyOptions {
            audit: "service_accounts = [\"app_*\"]".into(),
            extra: format!("[rules]\ndisable = [\"human-data-change\"]\n\n{extra}"),
            ..ProxyOptions::default()
        },
    )
}

/// Runs SQL as the superuser `postgres` (a human; trusted on 127.0.0.1).
fn human(proxy: &Proxy, sql: &str) {
    let (ok, _, err) = psql(
        &proxy.conninfo("postgres", "x", "app", "sslmode=disable connect_timeout=20"),
        sql,
    );
    assert!(ok, "psql failed: {err}");
}

/// Fires `unbounded-write` once (an UPDATE without WHERE on a fresh table).
fn fire_unbounded_write(proxy: &Proxy, table: &str) -> Value {
    human(
        proxy,
        &format!("create table {table} (a int); update {table} set a = 1"),
    );
    assert_eq!(proxy.fired("unbounded-write"), 1.0);
    proxy.wait_finding("unbounded-write", |_| true)
}

/// Fires `dangerous-function` once.
fn fire_dangerous_function(proxy: &Proxy) -> Value {
    human(proxy, "select length(pg_read_file('PG_VERSION'))");
    assert_eq!(proxy.fired("dangerous-function"), 1.0);
    proxy.wait_finding("dangerous-function", |_| true)
}

fn outbox(proxy: &Proxy, channel: &str) -> PathBuf {
    proxy.dir.path().join("outbox").join(channel)
}

/// The `.json` entries directly in `dir`.
fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "json"))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// The alerting lines of the metrics, for failure messages.
fn alert_metrics(proxy: &Proxy) -> String {
    proxy
        .metrics()
        .lines()
        .filter(|l| l.starts_with("pgvigil_alerts_total") || l.starts_with("pgvigil_outbox"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `pgvigil_alerts_total` of one channel and status (the exporter prints the labels in
/// the order they are registered: channel, then status).
fn alerts(proxy: &Proxy, channel: &str, status: &str) -> f64 {
    proxy.metric(&format!(
        "pgvigil_alerts_total{{channel=\"{channel}\",status=\"{status}\"}}"
    ))
}

/// Waits until the channel's outbox folder holds no entry and its depth gauge says 0.
fn wait_outbox_empty(proxy: &Proxy, channel: &str) {
    let dir = outbox(proxy, channel);
    let gauge = format!("pgvigil_outbox_depth{{channel=\"{channel}\"}} 0");
    let deadline = Instant::now() + PATIENCE;
    while !(json_files(&dir).is_empty() && proxy.metrics().lines().any(|l| l == gauge)) {
        assert_nothing_lost(proxy);
        if Instant::now() > deadline {
            panic!(
                "outbox of {channel} not empty: {:?}\n{}\nlog:\n{}",
                json_files(&dir),
                alert_metrics(proxy),
                proxy.log()
            );
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// What the outbox writer logs when it loses a finding for a channel.
const STORE_FAILED: &str = "cannot store a finding in the outbox";

/// Fails when the outbox writer dropped a finding for some channel (see
/// `findings_fired_back_to_back_reach_every_channel`).
fn assert_nothing_lost(proxy: &Proxy) {
    let log = proxy.log();
    let lost: Vec<&str> = log.lines().filter(|l| l.contains(STORE_FAILED)).collect();
    assert!(
        lost.is_empty(),
        "the outbox writer could not store findings, so they never reach that channel \
         (ENOENT here has been a delivery task's listing, outbox::pending, deleting the \
         writer's .tmp- file before its rename):\n{}",
        lost.join("\n")
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hmac_sha256_hex(key: &str, body: &[u8]) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(body);
    hex(&mac.finalize().into_bytes())
}

// ---- Tests ----

#[test]
fn webhook_retries_429_then_500_then_delivers_once() {
    let server = HookServer::start(vec![(429, vec![("Retry-After", "1")]), (500, vec![])]);
    let proxy = start(&format!(
        r#"[alerts.webhook.hook]
kind = "generic"
url = "{}"
secret = "s3cret-key"
retry_initial = "200ms"
"#,
        server.url("/hook")
    ));
    let finding = fire_unbounded_write(&proxy, "wh_retry");
    let is_it = |r: &Request| r.json()["rule_id"] == "unbounded-write";
    let reqs = server.wait_for(3, is_it, &proxy);
    wait_outbox_empty(&proxy, "hook");
    assert_eq!(reqs.len(), 3, "one finding, three attempts");
    for (i, r) in reqs.iter().enumerate() {
        assert_eq!(r.path, "/hook");
        // Every attempt carries the stored finding, byte for byte the same.
        assert_eq!(r.body, reqs[0].body, "attempt {i} sent another body");
        let body = r.json();
        assert_eq!(body, finding, "attempt {i}: the body is the finding");
        assert_eq!(body["id"], finding["id"]);
        assert_eq!(body["dedup_key"], finding["dedup_key"]);
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(
            r.header("x-pgvigil-dedup-key"),
            finding["dedup_key"].as_str(),
            "attempt {i}"
        );
        let signature = r
            .header("x-pgvigil-signature")
            .unwrap_or_else(|| panic!("attempt {i} is not signed: {:?}", r.headers));
        assert_eq!(
            signature,
            format!("sha256={}", hmac_sha256_hex("s3cret-key", &r.body)),
            "attempt {i}: the signature does not verify"
        );
    }
    // Retry-After: 1 after the 429; the 500 waits the backoff (200ms doubled = 400ms,
    // jittered into its upper half, so at least 200ms).
    let gap1 = reqs[1].at - reqs[0].at;
    let gap2 = reqs[2].at - reqs[1].at;
    assert!(
        gap1 >= Duration::from_millis(950),
        "Retry-After: 1 not honoured: second attempt after {gap1:?}"
    );
    assert!(
        gap2 >= Duration::from_millis(150),
        "no backoff after the 500: third attempt after {gap2:?}"
    );
    assert_eq!(
        alerts(&proxy, "hook", "sent"),
        1.0,
        "{}",
        alert_metrics(&proxy)
    );
    assert_eq!(
        alerts(&proxy, "hook", "retry"),
        2.0,
        "{}",
        alert_metrics(&proxy)
    );
    assert_eq!(alerts(&proxy, "hook", "dropped"), 0.0);
    assert!(json_files(&outbox(&proxy, "hook").join("dead")).is_empty());
    // Delivered once: nothing more comes.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        server.requests().len(),
        3,
        "requests after the 202: {:?}",
        server.requests()
    );
    assert_eq!(alerts(&proxy, "hook", "sent"), 1.0);
    assert_nothing_lost(&proxy);
}

#[test]
fn pagerduty_and_opsgenie_payloads_carry_the_dedup_key() {
    let server = HookServer::start(vec![]);
    let proxy = start(&format!(
        r#"[alerts.webhook.pd]
kind = "pagerduty"
url = "{}"
routing_key = "rk"

[alerts.webhook.og]
kind = "opsgenie"
url = "{}"
api_key = "k"
"#,
        server.url("/pd"),
        server.url("/og")
    ));
    let finding = fire_unbounded_write(&proxy, "wh_incident");
    let pd = server.wait_for(1, |r| r.path == "/pd", &proxy);
    let og = server.wait_for(1, |r| r.path == "/og", &proxy);
    wait_outbox_empty(&proxy, "pd");
    wait_outbox_empty(&proxy, "og");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(server.requests().len(), 2, "{:?}", server.requests());

    let p = pd[0].json();
    assert_eq!(p["routing_key"], "rk");
    assert_eq!(p["event_action"], "trigger");
    assert_eq!(p["dedup_key"], finding["dedup_key"]);
    assert_eq!(
        p["payload"]["severity"], "error",
        "high is PagerDuty's error"
    );
    assert_eq!(p["payload"]["class"], "unbounded-write");
    assert_eq!(p["payload"]["component"], "app");
    assert_eq!(p["payload"]["custom_details"], finding);
    assert!(p["payload"]["summary"]
        .as_str()
        .is_some_and(|s| s.contains("unbounded-write")));
    assert!(
        pd[0].header("authorization").is_none(),
        "the routing key goes in the body only"
    );

    let o = og[0].json();
    assert_eq!(o["alias"], finding["dedup_key"]);
    assert_eq!(og[0].header("authorization"), Some("GenieKey k"));
    assert_eq!(o["priority"], "P2", "high is P2");
    assert_eq!(o["details"]["id"], finding["id"]);
    assert_eq!(o["details"]["dedup_key"], finding["dedup_key"]);
    assert_eq!(o["details"]["rule_id"], "unbounded-write");
    assert_eq!(o["entity"], "app");
    assert!(o["tags"]
        .as_array()
        .is_some_and(|t| t.iter().any(|t| t == "unbounded-write")));

    for ch in ["pd", "og"] {
        assert_eq!(alerts(&proxy, ch, "sent"), 1.0, "{}", alert_metrics(&proxy));
        assert_eq!(alerts(&proxy, ch, "retry"), 0.0);
    }
    assert_nothing_lost(&proxy);
}

#[test]
fn refused_finding_is_dead_lettered_not_retried() {
    let server = HookServer::start(vec![(400, vec![])]);
    let proxy = start(&format!(
        r#"[alerts.webhook.hook]
kind = "generic"
url = "{}"
retry_initial = "100ms"
"#,
        server.url("/hook")
    ));
    let first = fire_unbounded_write(&proxy, "wh_refused");
    let dead_dir = outbox(&proxy, "hook").join("dead");
    wait_until("the refused finding in dead/", PATIENCE, || {
        json_files(&dead_dir).len() == 1
    });
    let dead = json_files(&dead_dir);
    let buried: Value = serde_json::from_slice(&std::fs::read(&dead[0]).unwrap()).unwrap();
    assert_eq!(buried, first, "dead/ keeps the refused finding");
    wait_outbox_empty(&proxy, "hook");
    assert_eq!(
        alerts(&proxy, "hook", "dropped"),
        1.0,
        "{}",
        alert_metrics(&proxy)
    );
    assert_eq!(alerts(&proxy, "hook", "retry"), 0.0);
    assert_eq!(alerts(&proxy, "hook", "sent"), 0.0);
    // Not retried: well past several retry_initial periods, still one request.
    std::thread::sleep(Duration::from_millis(1000));
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1, "a refusal is final: {reqs:?}");
    assert_eq!(reqs[0].json()["id"], first["id"]);

    // The channel goes on: the next finding is delivered.
    let second = fire_dangerous_function(&proxy);
    let got = server.wait_for(2, |_| true, &proxy);
    assert_eq!(got[1].json(), second);
    wait_outbox_empty(&proxy, "hook");
    assert_eq!(
        alerts(&proxy, "hook", "sent"),
        1.0,
        "{}",
        alert_metrics(&proxy)
    );
    assert_eq!(alerts(&proxy, "hook", "dropped"), 1.0);
    assert_eq!(
        json_files(&dead_dir).len(),
        1,
        "only the refused one is dead"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(server.requests().len(), 2);
    assert_nothing_lost(&proxy);
}

#[test]
fn outbox_survives_kill_9() {
    let port = common::free_port();
    let mut proxy = start(&format!(
        r#"[alerts.webhook.hook]
kind = "generic"
url = "http://127.0.0.1:{port}/hook"
retry_initial = "100ms"
retry_max = "500ms"
"#
    ));
    let finding = fire_unbounded_write(&proxy, "wh_kill");
    let dir = outbox(&proxy, "hook");
    wait_until("the finding in the webhook's outbox", PATIENCE, || {
        json_files(&dir).len() == 1
    });
    let stored: Value = serde_json::from_slice(&std::fs::read(&json_files(&dir)[0]).unwrap())
        .expect("outbox entry is JSON");
    assert_eq!(stored, finding);
    // The webhook is failing meanwhile (nothing listens), and retrying.
    common::metric_at_least(
        &proxy,
        "pgvigil_alerts_total{channel=\"hook\",status=\"retry\"}",
        1.0,
    );
    // The file channel has delivered it and removed its own entry: from here on a
    // restart cannot deliver it to findings.jsonl again. (Were the kill to land between
    // the file sink's append and the entry's removal, a second line with the same id
    // would be legitimate: the outbox is at-least-once. Waiting for the file channel's
    // folder to empty rules that window out, so exactly one line is required below.)
    wait_outbox_empty(&proxy, "file");

    proxy.kill_hard();
    assert_eq!(json_files(&dir).len(), 1, "kill -9 kept the entry");
    let server = HookServer::start_on(port, vec![]);
    proxy.restart();

    let reqs = server.wait_for(1, |_| true, &proxy);
    let body = reqs[0].json();
    assert_eq!(body["id"], finding["id"]);
    assert_eq!(body["dedup_key"], finding["dedup_key"]);
    assert_eq!(body, finding);
    wait_outbox_empty(&proxy, "hook");
    assert_eq!(
        alerts(&proxy, "hook", "sent"),
        1.0,
        "{}",
        alert_metrics(&proxy)
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(server.requests().len(), 1, "{:?}", server.requests());
    let lines = proxy
        .findings()
        .into_iter()
        .filter(|f| f["id"] == finding["id"])
        .count();
    assert_eq!(lines, 1, "findings.jsonl: {:#?}", proxy.findings());
    assert_eq!(proxy.findings().len(), 1, "{:#?}", proxy.findings());
    assert_nothing_lost(&proxy);
}

#[test]
fn slack_min_interval_spaces_requests() {
    let server = HookServer::start(vec![]);
    let proxy = start(&format!(
        r#"[alerts.webhook.chat]
kind = "slack"
url = "{}"
min_interval = "700ms"
"#,
        server.url("/services/T0/B0/xyz")
    ));
    // Both findings from one psql call: they reach the outbox together, so only
    // min_interval can space the requests.
    human(
        &proxy,
        "create table wh_slack (a int); update wh_slack set a = 1; \
         select length(pg_read_file('PG_VERSION'))",
    );
    assert_eq!(proxy.fired("unbounded-write"), 1.0);
    assert_eq!(proxy.fired("dangerous-function"), 1.0);
    let reqs = server.wait_for(2, |_| true, &proxy);
    wait_outbox_empty(&proxy, "chat");
    let gap = reqs[1].at - reqs[0].at;
    assert!(
        gap >= Duration::from_millis(600),
        "min_interval = 700ms, requests {gap:?} apart"
    );
    assert_nothing_lost(&proxy);
    let mut rules = Vec::new();
    for r in &reqs {
        assert_eq!(r.path, "/services/T0/B0/xyz");
        let body = r.json();
        let text = body["text"]
            .as_str()
            .unwrap_or_else(|| panic!("no text: {body}"));
        let rule = ["unbounded-write", "dangerous-function"]
            .into_iter()
            .find(|id| text.contains(&format!("`{id}`")))
            .unwrap_or_else(|| panic!("no rule id in {text:?}"));
        let finding = proxy.wait_finding(rule, |_| true);
        assert!(
            text.contains(finding["dedup_key"].as_str().unwrap()),
            "{text:?}"
        );
        rules.push(rule);
        assert_eq!(body.as_object().map(|o| o.len()), Some(1), "{body}");
    }
    rules.sort();
    assert_eq!(rules, ["dangerous-function", "unbounded-write"]);
    assert_eq!(
        alerts(&proxy, "chat", "sent"),
        2.0,
        "{}",
        alert_metrics(&proxy)
    );
}

/// Findings stored back to back, while the channels are busy delivering the ones before,
/// all reach every channel. A rule with no cooldown fires on each of 40 statements of one
/// psql call; each finding must be in findings.jsonl and reach the webhook exactly once.
#[test]
fn findings_fired_back_to_back_reach_every_channel() {
    const N: usize = 40;
    let rules = tempfile::tempdir().expect("rules dir");
    std::fs::write(
        rules.path().join("probe.toml"),
        r#"id = "probe"
description = "upper() called"
category = "test"
severity = "low"
on = "statement"
window = "1s"
cooldown = "0s"

[match]
function = ["upper"]
"#,
    )
    .expect("write rule");
    let server = HookServer::start(vec![]);
    let proxy = Proxy::start(
        pg(),
        ProxyOptions {
            extra: format!(
                r#"[rules]
dir = "{}"
disable = ["human-data-change"]

[alerts.webhook.hook]
kind = "generic"
url = "{}"
"#,
                rules.path().display(),
                server.url("/hook")
            ),
            ..ProxyOptions::default()
        },
    );
    let sql: Vec<String> = (0..N).map(|i| format!("select upper('x{i}')")).collect();
    human(&proxy, &sql.join("; "));
    assert_eq!(proxy.fired("probe"), N as f64);
    let deadline = Instant::now() + PATIENCE;
    while !(proxy.findings().len() >= N && server.requests().len() >= N) {
        assert_nothing_lost(&proxy);
        if Instant::now() > deadline {
            panic!(
                "{} findings in the file, {} webhook requests, of {N}\n{}\nlog:\n{}",
                proxy.findings().len(),
                server.requests().len(),
                alert_metrics(&proxy),
                proxy.log()
            );
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    wait_outbox_empty(&proxy, "file");
    wait_outbox_empty(&proxy, "hook");
    let mut in_file: Vec<String> = proxy
        .findings()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect();
    let mut sent: Vec<String> = server
        .requests()
        .iter()
        .map(|r| r.json()["id"].as_str().unwrap().to_string())
        .collect();
    in_file.sort();
    sent.sort();
    in_file.dedup();
    assert_eq!(in_file.len(), N, "distinct findings in the file");
    assert_eq!(sent, in_file, "the webhook got each finding once");
    assert_eq!(alerts(&proxy, "hook", "sent"), N as f64);
    assert_nothing_lost(&proxy);
}
