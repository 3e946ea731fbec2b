//! Tests of the webhook channel against a tiny scripted HTTP/1.1 server on 127.0.0.1.

use super::*;
use crate::config::Secret;
use crate::detect::finding::test_support::sample;
use std::collections::BTreeMap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the test server saw.
#[derive(Debug)]
struct Request {
    method: String,
    path: String,
    /// Names lowercased.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

/// What the test server answers; `None` status = never answer.
struct Reply {
    status: Option<u16>,
    headers: Vec<(&'static str, String)>,
    body: &'static str,
}

fn reply(status: u16) -> Reply {
    Reply {
        status: Some(status),
        headers: Vec::new(),
        body: "",
    }
}

/// Serves one request; the handle yields what was received.
async fn serve_once(script: Reply) -> (String, tokio::task::JoinHandle<Request>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let handle = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.expect("accept");
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            let n = sock.read(&mut chunk).await.expect("read head");
            assert!(n > 0, "connection closed before the headers ended");
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8(buf[..head_end].to_vec()).expect("ASCII head");
        let mut lines = head.split("\r\n");
        let mut start = lines.next().expect("request line").split(' ');
        let method = start.next().expect("method").to_string();
        let path = start.next().expect("path").to_string();
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (n, v) = l.split_once(':').expect("header line");
                (n.trim().to_ascii_lowercase(), v.trim().to_string())
            })
            .collect();
        let len: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map(|(_, v)| v.parse().expect("content-length"))
            .unwrap_or(0);
        let mut body = buf[head_end + 4..].to_vec();
        while body.len() < len {
            let n = sock.read(&mut chunk).await.expect("read body");
            assert!(n > 0, "connection closed inside the body");
            body.extend_from_slice(&chunk[..n]);
        }
        let request = Request {
            method,
            path,
            headers,
            body,
        };
        let Some(status) = script.status else {
            tokio::time::sleep(Duration::from_secs(30)).await;
            return request;
        };
        let mut out = format!(
            "HTTP/1.1 {status} Scripted\r\nContent-Length: {}\r\nConnection: close\r\n",
            script.body.len()
        );
        for (n, v) in &script.headers {
            out.push_str(&format!("{n}: {v}\r\n"));
        }
        out.push_str("\r\n");
        out.push_str(script.body);
        sock.write_all(out.as_bytes()).await.expect("write");
        let _ = sock.shutdown().await;
        request
    });
    (format!("http://{addr}/hook"), handle)
}

fn config(kind: WebhookKind, url: Option<String>) -> Webhook {
    Webhook {
        kind,
        url,
        headers: BTreeMap::new(),
        secret: None,
        routing_key: None,
        api_key: None,
        min_severity: Severity::Info,
        min_interval: None,
        timeout: Duration::from_secs(5),
        retry_initial: Duration::from_secs(1),
        retry_max: Duration::from_secs(300),
    }
}

fn sink(cfg: &Webhook) -> WebhookSink {
    WebhookSink::new("test", cfg, Path::new("/nonexistent")).expect("sink")
}

/// Delivers the sample finding to a server answering `script`.
async fn exchange(kind: WebhookKind, script: Reply) -> (Delivery, Request) {
    let (url, server) = serve_once(script).await;
    let cfg = config(kind, Some(url));
    let verdict = sink(&cfg).deliver(&sample()).await;
    (verdict, server.await.expect("server"))
}

fn config_error(cfg: &Webhook) -> String {
    match WebhookSink::new("x", cfg, Path::new("/nonexistent")) {
        Ok(_) => panic!("expected a config error"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn generic_posts_the_finding_signed() {
    let (url, server) = serve_once(reply(200)).await;
    let mut cfg = config(WebhookKind::Generic, Some(url));
    cfg.secret = Some(Secret::Inline("s3cret-key".into()));
    cfg.headers
        .insert("X-Team".into(), "database-security".into());
    let verdict = sink(&cfg).deliver(&sample()).await;
    assert_eq!(verdict, Delivery::Sent);
    let req = server.await.expect("server");
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/hook");
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(req.header("x-team"), Some("database-security"));
    assert_eq!(
        req.header("x-pgvigil-dedup-key"),
        Some(sample().dedup_key.as_str())
    );
    let finding: Finding = serde_json::from_slice(&req.body).expect("a finding");
    assert_eq!(finding, sample());

    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"s3cret-key").expect("key");
    mac.update(&req.body);
    let expected = format!("sha256={}", hex(&mac.finalize().into_bytes()));
    assert_eq!(req.header("x-pgvigil-signature"), Some(expected.as_str()));
}

#[tokio::test]
async fn generic_without_secret_is_unsigned() {
    let (verdict, req) = exchange(WebhookKind::Generic, reply(204)).await;
    assert_eq!(verdict, Delivery::Sent);
    assert_eq!(req.header("x-pgvigil-signature"), None);
}

#[tokio::test]
async fn secret_file_is_relative_to_the_config_folder() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("hook.key"), "from-file\n").expect("write");
    let (url, server) = serve_once(reply(200)).await;
    let mut cfg = config(WebhookKind::Generic, Some(url));
    cfg.secret = Some(Secret::File {
        file: "hook.key".into(),
    });
    let sink = WebhookSink::new("test", &cfg, dir.path()).expect("sink");
    assert_eq!(sink.deliver(&sample()).await, Delivery::Sent);
    let req = server.await.expect("server");
    assert_eq!(
        req.header("x-pgvigil-signature").map(str::to_string),
        Some(format!("sha256={}", sign("from-file", &req.body)))
    );
}

#[tokio::test]
async fn slack_text_names_the_rule() {
    let mut finding = sample();
    finding.statement = Some(format!(
        "SELECT <!channel> FROM t WHERE x = '{}'",
        "a".repeat(900)
    ));
    let (url, server) = serve_once(reply(200)).await;
    let cfg = config(WebhookKind::Slack, Some(url));
    let sink = sink(&cfg);
    assert_eq!(sink.min_interval(), Some(Duration::from_secs(1)));
    assert_eq!(sink.deliver(&finding).await, Delivery::Sent);
    let body = server.await.expect("server").json();
    let text = body["text"].as_str().expect("text");
    assert!(text.contains("failed-logins"), "{text}");
    assert!(text.contains("TA0006") && text.contains("T1110"), "{text}");
    assert!(text.contains(&finding.dedup_key), "{text}");
    assert!(text.contains("```SELECT &lt;!channel&gt;"), "{text}");
    assert!(!text.contains("<!channel>"), "{text}");
    assert!(
        text.chars().count() < 1000,
        "statement not cut: {}",
        text.len()
    );
}

#[tokio::test]
async fn pagerduty_event() {
    let (url, server) = serve_once(reply(202)).await;
    let mut cfg = config(WebhookKind::Pagerduty, Some(url));
    cfg.routing_key = Some(Secret::Inline("R0UTINGKEY".into()));
    let mut finding = sample();
    finding.severity = Severity::Critical;
    assert_eq!(sink(&cfg).deliver(&finding).await, Delivery::Sent);
    let body = server.await.expect("server").json();
    assert_eq!(body["routing_key"], "R0UTINGKEY");
    assert_eq!(body["event_action"], "trigger");
    assert_eq!(body["dedup_key"], finding.dedup_key.as_str());
    let p = &body["payload"];
    assert_eq!(p["severity"], "critical");
    assert_eq!(p["source"], "203.0.113.7");
    assert_eq!(p["timestamp"], finding.ts.as_str());
    assert_eq!(p["component"], "app");
    assert_eq!(p["group"], "authentication");
    assert_eq!(p["class"], "failed-logins");
    assert_eq!(p["summary"], finding.summary().as_str());
    assert_eq!(p["custom_details"]["id"], finding.id.as_str());
    assert_eq!(p["custom_details"]["count"], 6);
}

#[test]
fn pagerduty_severity_and_limits() {
    let mut f = sample();
    for (ours, theirs) in [
        (Severity::Critical, "critical"),
        (Severity::High, "error"),
        (Severity::Medium, "warning"),
        (Severity::Low, "info"),
        (Severity::Info, "info"),
    ] {
        f.severity = ours;
        let body = pagerduty_payload(&f, "k").expect("payload");
        assert_eq!(body["payload"]["severity"], theirs);
    }
    f.description = "d".repeat(3000);
    f.client_addr = None;
    f.database = None;
    let body = pagerduty_payload(&f, "k").expect("payload");
    let summary = body["payload"]["summary"].as_str().expect("summary");
    assert_eq!(summary.chars().count(), 1024);
    assert_eq!(body["payload"]["source"], "pgvigil");
    assert!(body["payload"].get("component").is_none());
}

#[tokio::test]
async fn opsgenie_alert() {
    let (url, server) = serve_once(reply(202)).await;
    let mut cfg = config(WebhookKind::Opsgenie, Some(url));
    cfg.api_key = Some(Secret::Inline("genie-123".into()));
    assert_eq!(sink(&cfg).deliver(&sample()).await, Delivery::Sent);
    let req = server.await.expect("server");
    assert_eq!(req.header("authorization"), Some("GenieKey genie-123"));
    let body = req.json();
    assert_eq!(body["alias"], sample().dedup_key.as_str());
    assert_eq!(body["priority"], "P2");
    assert_eq!(body["source"], "pgvigil");
    assert_eq!(body["entity"], "app");
    assert_eq!(
        body["tags"],
        serde_json::json!(["failed-logins", "authentication", "TA0006", "T1110"])
    );
    assert_eq!(body["details"]["user"], "alice");
    assert_eq!(body["details"]["count"], "6");
    assert!(body["details"].get("statement").is_none());
    assert!(body["message"].as_str().expect("message").chars().count() <= 130);
}

#[test]
fn opsgenie_priorities_and_limits() {
    let mut f = sample();
    for (ours, theirs) in [
        (Severity::Critical, "P1"),
        (Severity::High, "P2"),
        (Severity::Medium, "P3"),
        (Severity::Low, "P4"),
        (Severity::Info, "P5"),
    ] {
        f.severity = ours;
        assert_eq!(opsgenie_payload(&f).expect("payload")["priority"], theirs);
    }
    f.statement = Some("x".repeat(40_000));
    f.dedup_key = "k".repeat(600);
    let body = opsgenie_payload(&f).expect("payload");
    assert_eq!(body["alias"].as_str().expect("alias").chars().count(), 512);
    assert_eq!(
        body["description"]
            .as_str()
            .expect("description")
            .chars()
            .count(),
        15000
    );
    let details: usize = body["details"]
        .as_object()
        .expect("details")
        .iter()
        .map(|(k, v)| k.len() + v.as_str().expect("string").chars().count())
        .sum();
    assert!(details <= 8000, "{details}");
    assert!(body["details"].get("statement").is_some());
}

#[tokio::test]
async fn status_verdicts() {
    let (v, _) = exchange(WebhookKind::Generic, reply(202)).await;
    assert_eq!(v, Delivery::Sent);

    let mut r = reply(429);
    r.headers.push(("Retry-After", "2".into()));
    let (v, _) = exchange(WebhookKind::Generic, r).await;
    assert!(
        matches!(v, Delivery::Retry { after: Some(d), .. } if d == Duration::from_secs(2)),
        "{v:?}"
    );

    let mut r = reply(503);
    let at = SystemTime::now() + Duration::from_secs(120);
    r.headers.push(("Retry-After", httpdate::fmt_http_date(at)));
    let (v, _) = exchange(WebhookKind::Generic, r).await;
    match v {
        Delivery::Retry {
            after: Some(d),
            reason,
        } => {
            assert!(
                d > Duration::from_secs(100) && d <= Duration::from_secs(120),
                "{d:?}"
            );
            assert!(reason.contains("503"), "{reason}");
        }
        other => panic!("{other:?}"),
    }

    let (v, _) = exchange(WebhookKind::Generic, reply(500)).await;
    assert!(matches!(v, Delivery::Retry { after: None, .. }), "{v:?}");

    let (v, _) = exchange(WebhookKind::Generic, reply(408)).await;
    assert!(matches!(v, Delivery::Retry { .. }), "{v:?}");

    let mut r = reply(400);
    r.body = "invalid event\r\n\x1b[31m";
    let (v, _) = exchange(WebhookKind::Generic, r).await;
    match v {
        Delivery::Reject { reason } => {
            assert!(reason.contains("400"), "{reason}");
            assert!(reason.contains("invalid event"), "{reason}");
            assert!(!reason.chars().any(char::is_control), "{reason:?}");
        }
        other => panic!("{other:?}"),
    }

    let mut r = reply(302);
    r.headers
        .push(("Location", "http://127.0.0.1:1/elsewhere".into()));
    let (v, _) = exchange(WebhookKind::Generic, r).await;
    assert!(matches!(v, Delivery::Reject { .. }), "{v:?}");
}

#[tokio::test]
async fn reject_reason_is_bounded_and_masks_secrets() {
    let (url, server) = serve_once(Reply {
        status: Some(401),
        headers: Vec::new(),
        body: Box::leak(format!("bad key genie-secret-9 {}", "z".repeat(5000)).into_boxed_str()),
    })
    .await;
    let mut cfg = config(WebhookKind::Opsgenie, Some(url));
    cfg.api_key = Some(Secret::Inline("genie-secret-9".into()));
    let v = sink(&cfg).deliver(&sample()).await;
    server.await.expect("server");
    match v {
        Delivery::Reject { reason } => {
            assert!(!reason.contains("genie-secret-9"), "{reason}");
            assert!(reason.contains("***"), "{reason}");
            assert!(reason.chars().count() < 260, "{}", reason.len());
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn connection_refused_is_retried() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let cfg = config(
        WebhookKind::Slack,
        Some(format!("http://{addr}/hook/T0SECRET")),
    );
    match sink(&cfg).deliver(&sample()).await {
        Delivery::Retry { after, reason } => {
            assert_eq!(after, None);
            assert!(!reason.contains("T0SECRET"), "URL leaked: {reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn timeout_is_retried() {
    let (url, server) = serve_once(Reply {
        status: None,
        headers: Vec::new(),
        body: "",
    })
    .await;
    let mut cfg = config(WebhookKind::Generic, Some(url));
    cfg.timeout = Duration::from_millis(200);
    let started = std::time::Instant::now();
    let v = sink(&cfg).deliver(&sample()).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    match v {
        Delivery::Retry {
            after: None,
            reason,
        } => {
            assert!(reason.contains("timed out"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    server.abort();
}

#[test]
fn retry_after_values() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    assert_eq!(parse_retry_after("2", now), Some(Duration::from_secs(2)));
    assert_eq!(
        parse_retry_after(" 120 ", now),
        Some(Duration::from_secs(120))
    );
    assert_eq!(parse_retry_after("0", now), Some(Duration::ZERO));
    assert_eq!(
        parse_retry_after("99999999999999999999999", now),
        Some(Duration::from_secs(u64::MAX))
    );
    let later = httpdate::fmt_http_date(now + Duration::from_secs(90));
    assert_eq!(
        parse_retry_after(&later, now),
        Some(Duration::from_secs(90))
    );
    assert_eq!(
        parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
        Some(Duration::ZERO)
    );
    for bad in [
        "",
        "soon",
        "-1",
        "1.5",
        "2s",
        "Wed, 99 Oct 2015 07:28:00 GMT",
    ] {
        assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
    }
}

#[test]
fn config_errors() {
    let e = config_error(&config(WebhookKind::Generic, None));
    assert!(
        e.contains("alerts.webhook.x") && e.contains("needs url"),
        "{e}"
    );
    let e = config_error(&config(WebhookKind::Slack, None));
    assert!(e.contains("needs url"), "{e}");
    let e = config_error(&config(WebhookKind::Pagerduty, None));
    assert!(e.contains("routing_key"), "{e}");
    let e = config_error(&config(WebhookKind::Opsgenie, None));
    assert!(e.contains("api_key"), "{e}");
    let e = config_error(&config(
        WebhookKind::Generic,
        Some("ftp://example.com/secret-path".into()),
    ));
    assert!(e.contains("`ftp`") && e.contains("https://"), "{e}");
    assert!(!e.contains("secret-path"), "{e}");
    let e = config_error(&config(WebhookKind::Generic, Some("not a url".into())));
    assert!(e.contains("url"), "{e}");

    let mut cfg = config(WebhookKind::Generic, Some("http://127.0.0.1/".into()));
    cfg.headers
        .insert("X-Bad".into(), "line\nbreak-value".into());
    let e = config_error(&cfg);
    assert!(e.contains("X-Bad") && !e.contains("break-value"), "{e}");
    let mut cfg = config(WebhookKind::Generic, Some("http://127.0.0.1/".into()));
    cfg.headers.insert("Content-Length".into(), "1".into());
    assert!(config_error(&cfg).contains("Content-Length"));

    let mut cfg = config(WebhookKind::Pagerduty, None);
    cfg.routing_key = Some(Secret::File {
        file: "missing.key".into(),
    });
    assert!(config_error(&cfg).contains("routing_key"));
}

#[test]
fn defaults_and_min_interval() {
    let mut cfg = config(WebhookKind::Pagerduty, None);
    cfg.routing_key = Some(Secret::Inline("rk-0000".into()));
    let s = sink(&cfg);
    assert_eq!(s.url.as_str(), PAGERDUTY_URL);
    assert_eq!(s.min_interval(), None);
    let dbg = format!("{s:?}");
    assert!(!dbg.contains("rk-0000"), "{dbg}");

    let mut cfg = config(WebhookKind::Opsgenie, None);
    cfg.api_key = Some(Secret::Inline("og".into()));
    cfg.min_interval = Some(Duration::from_millis(250));
    let s = sink(&cfg);
    assert_eq!(s.url.as_str(), OPSGENIE_URL);
    assert_eq!(s.min_interval(), Some(Duration::from_millis(250)));

    let mut cfg = config(WebhookKind::Slack, Some("http://127.0.0.1/".into()));
    cfg.min_interval = Some(Duration::from_secs(3));
    assert_eq!(sink(&cfg).min_interval(), Some(Duration::from_secs(3)));
}

#[tokio::test]
async fn echoed_statement_stays_out_of_the_reason() {
    let mut finding = sample();
    finding.statement = Some("SELECT \"card\"\nFROM billing.cards WHERE id = $1".into());
    let echo = format!(
        "bad request: {} / {}",
        serde_json::to_string(&finding.statement).expect("json"),
        finding.statement.as_deref().unwrap_or_default()
    );
    let (url, server) = serve_once(Reply {
        status: Some(422),
        headers: Vec::new(),
        body: Box::leak(echo.into_boxed_str()),
    })
    .await;
    let cfg = config(WebhookKind::Generic, Some(url));
    let v = sink(&cfg).deliver(&finding).await;
    server.await.expect("server");
    match v {
        Delivery::Reject { reason } => {
            // With SQL in the finding, the body stays out of the reason entirely.
            assert!(!reason.contains("billing"), "{reason}");
            assert!(!reason.contains("bad request"), "{reason}");
            assert!(reason.contains("422"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}
