//! The HTTP(S) webhook channel (`[alerts.webhook.NAME]`): one POST per finding.
//!
//! Four payload kinds: `generic` (the finding as JSON, optionally signed with an
//! HMAC-SHA256 `X-Pgvigil-Signature`), `slack` (an incoming-webhook `{"text": ...}`),
//! `pagerduty` (Events API v2 `trigger`) and `opsgenie` (Alert API). Every kind carries the
//! finding's `dedup_key` so incident tools fold repeats and retries into one incident.
//!
//! [`WebhookSink::deliver`] makes exactly one attempt and answers a [`Delivery`]: 2xx is
//! `Sent`; 408, 429 and 5xx are `Retry` (honouring `Retry-After`); other 4xx and 3xx
//! (redirects are not followed) are `Reject`; network errors and timeouts are `Retry`.
//! The response is untrusted: at most [`MAX_RESPONSE_BODY`] bytes of it are read, and only
//! a scrubbed, truncated snippet reaches the verdict's reason. Reasons never carry the URL
//! (a Slack webhook URL is itself a credential), secrets or header values, and the
//! statement text is never logged here.
//!
//! TLS is rustls with the ring provider and the system's root certificates
//! (`rustls-platform-verifier`); proxies from the usual `HTTPS_PROXY`/`HTTP_PROXY`/
//! `NO_PROXY` environment variables are honoured.

use crate::config::{Webhook, WebhookKind};
use crate::detect::{Finding, Severity};
use crate::sinks::{Delivery, SinkError};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use zeroize::Zeroizing;

/// PagerDuty Events API v2 endpoint used when `url` is unset.
pub const PAGERDUTY_URL: &str = "https://events.pagerduty.com/v2/enqueue";
/// Opsgenie Alert API endpoint used when `url` is unset.
pub const OPSGENIE_URL: &str = "https://api.opsgenie.com/v2/alerts";
/// Most bytes of a response body read (for the reason of a refused delivery).
pub const MAX_RESPONSE_BODY: usize = 8 * 1024;
/// Characters of the response body kept in a verdict's reason.
const REASON_BODY_CHARS: usize = 200;
/// Characters of the statement shown in a Slack message.
const SLACK_STATEMENT_CHARS: usize = 500;
/// Opsgenie's limit on the `details` map (keys and values), with some room to spare.
const OPSGENIE_DETAILS_CHARS: usize = 7500;
/// Minimum interval between Slack requests when `min_interval` is unset.
const SLACK_MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Headers that frame the request; configuring them would break it.
const FORBIDDEN_HEADERS: [&str; 6] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
];

/// One configured webhook: the HTTP client, the target and the resolved secrets.
pub struct WebhookSink {
    name: String,
    kind: WebhookKind,
    url: reqwest::Url,
    /// Configured headers plus the kind's own (Opsgenie's `Authorization`), all marked
    /// sensitive.
    headers: HeaderMap,
    /// HMAC key of `X-Pgvigil-Signature` (`generic`).
    signing_key: Option<Zeroizing<String>>,
    /// PagerDuty integration key (`pagerduty`).
    routing_key: Option<Zeroizing<String>>,
    /// Values to mask if a response echoes them into a reason.
    scrub: Vec<Zeroizing<String>>,
    min_interval: Option<Duration>,
    client: reqwest::Client,
}

impl std::fmt::Debug for WebhookSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL's path and query may be a credential (Slack); show the host only.
        f.debug_struct("WebhookSink")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("host", &self.url.host_str().unwrap_or(""))
            .field("min_interval", &self.min_interval)
            .finish_non_exhaustive()
    }
}

impl WebhookSink {
    /// Builds the client; resolves secrets (relative secret files against `base`, the
    /// config folder). Fails on a missing or malformed `url`, a missing `routing_key`
    /// (`pagerduty`) or `api_key` (`opsgenie`), an unreadable secret, an invalid header, or
    /// (for `https://`) when the system's root certificates cannot be loaded.
    pub fn new(name: &str, cfg: &Webhook, base: &Path) -> Result<WebhookSink, SinkError> {
        let err = |message: String| SinkError::Config {
            channel: format!("webhook.{name}"),
            message,
        };
        let url = parse_url(cfg).map_err(err)?;
        if cfg.timeout.is_zero() {
            return Err(err(
                "timeout must be more than 0 (e.g. timeout = \"10s\")".into()
            ));
        }

        let mut scrub = Vec::new();
        let mut headers = HeaderMap::new();
        for (key, value) in &cfg.headers {
            let header = HeaderName::from_bytes(key.as_bytes())
                .map_err(|_| err(format!("headers: `{key}` is not a valid header name")))?;
            if FORBIDDEN_HEADERS.contains(&header.as_str()) {
                return Err(err(format!(
                    "headers: `{key}` is set by the HTTP client; remove it"
                )));
            }
            let mut v = HeaderValue::from_str(value).map_err(|_| {
                err(format!(
                    "headers.{key}: the value is not a valid header value \
                     (visible ASCII and spaces only)"
                ))
            })?;
            v.set_sensitive(true);
            headers.insert(header, v);
            push_scrub(&mut scrub, value);
        }

        let resolve = |key: &str, secret: &crate::config::Secret| {
            let value = secret
                .resolve(base)
                .map_err(|e| err(format!("{key}: {e}")))?;
            if value.trim().is_empty() {
                return Err(err(format!("{key} is empty")));
            }
            Ok(value)
        };
        let signing_key = match (&cfg.secret, cfg.kind) {
            (Some(s), WebhookKind::Generic) => Some(resolve("secret", s)?),
            _ => None,
        };
        let routing_key = match (&cfg.routing_key, cfg.kind) {
            (Some(s), WebhookKind::Pagerduty) => Some(resolve("routing_key", s)?),
            (None, WebhookKind::Pagerduty) => {
                return Err(err(
                    "kind = \"pagerduty\" needs routing_key (the Events API v2 integration \
                     key, inline or { file = \"...\" })"
                        .into(),
                ))
            }
            _ => None,
        };
        if cfg.kind == WebhookKind::Opsgenie {
            let Some(secret) = &cfg.api_key else {
                return Err(err(
                    "kind = \"opsgenie\" needs api_key (an Opsgenie API integration key, \
                     inline or { file = \"...\" })"
                        .into(),
                ));
            };
            let key = resolve("api_key", secret)?;
            let mut v = HeaderValue::from_str(&format!("GenieKey {}", key.as_str()))
                .map_err(|_| err("api_key contains characters not allowed in a header".into()))?;
            v.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, v);
            push_scrub(&mut scrub, &key);
        }
        for key in signing_key.iter().chain(routing_key.iter()) {
            push_scrub(&mut scrub, key);
        }

        let client = build_client(&url, cfg.timeout).map_err(err)?;
        let min_interval = cfg.min_interval.or(match cfg.kind {
            WebhookKind::Slack => Some(SLACK_MIN_INTERVAL),
            _ => None,
        });
        Ok(WebhookSink {
            name: name.to_string(),
            kind: cfg.kind,
            url,
            headers,
            signing_key,
            routing_key,
            scrub,
            min_interval,
            client,
        })
    }

    /// The minimum interval between requests: `min_interval`, or 1s for `slack` when
    /// unset, else `None`.
    pub fn min_interval(&self) -> Option<Duration> {
        self.min_interval
    }

    /// One delivery attempt. Never retries itself.
    pub async fn deliver(&self, finding: &Finding) -> Delivery {
        let body = match self.body(finding) {
            Ok(body) => body,
            Err(e) => {
                return Delivery::Reject {
                    reason: format!("cannot encode the finding: {e}"),
                }
            }
        };
        let mut headers = self.headers.clone();
        headers.insert(
            reqwest::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if self.kind == WebhookKind::Generic {
            if let Some(key) = &self.signing_key {
                if let Ok(v) = HeaderValue::from_str(&format!("sha256={}", sign(key, &body))) {
                    headers.insert("x-pgvigil-signature", v);
                }
            }
            // A dedup key that is not a valid header value is left out (it is in the body).
            if let Ok(v) = HeaderValue::from_str(&finding.dedup_key) {
                headers.insert("x-pgvigil-dedup-key", v);
            }
        }
        let sent = self
            .client
            .post(self.url.clone())
            .headers(headers)
            .body(body)
            .send()
            .await;
        let verdict = match sent {
            Ok(response) => self.verdict(response, finding).await,
            Err(e) => Delivery::Retry {
                after: None,
                reason: self.scrubbed(&describe_error(&e)),
            },
        };
        // The reason is the caller's to log; only the outcome here.
        let outcome = match &verdict {
            Delivery::Sent => "sent",
            Delivery::Retry { .. } => "retry",
            Delivery::Reject { .. } => "reject",
        };
        tracing::debug!(
            channel = %self.name,
            rule = %finding.rule_id,
            finding = %finding.id,
            outcome,
            "webhook delivery attempt"
        );
        verdict
    }

    /// The request body for this sink's kind.
    fn body(&self, finding: &Finding) -> Result<Vec<u8>, serde_json::Error> {
        match self.kind {
            WebhookKind::Generic => serde_json::to_vec(finding),
            WebhookKind::Slack => serde_json::to_vec(&slack_payload(finding)),
            WebhookKind::Pagerduty => {
                let key = self.routing_key.as_ref().map(|k| k.as_str()).unwrap_or("");
                serde_json::to_vec(&pagerduty_payload(finding, key)?)
            }
            WebhookKind::Opsgenie => serde_json::to_vec(&opsgenie_payload(finding)?),
        }
    }

    /// Turns a response into a verdict, reading at most [`MAX_RESPONSE_BODY`] bytes.
    async fn verdict(&self, mut response: reqwest::Response, finding: &Finding) -> Delivery {
        let status = response.status();
        if status.is_success() {
            return Delivery::Sent;
        }
        let after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let body = read_bounded(&mut response, MAX_RESPONSE_BODY).await;
        let mut reason = format!("HTTP {status}");
        // A server may echo the request in any encoding (escaped twice, HTML, cut short):
        // with SQL in the finding, no part of the body goes into the reason, which is
        // logged, and SQL leaves only through the sinks.
        let snippet = match finding.statement {
            Some(_) => String::new(),
            None => self.body_snippet(&body),
        };
        if !snippet.is_empty() {
            reason.push_str(": ");
            reason.push_str(&snippet);
        }
        let code = status.as_u16();
        if code == 408 || code == 429 || status.is_server_error() {
            Delivery::Retry { after, reason }
        } else if status.is_redirection() {
            Delivery::Reject {
                reason: format!(
                    "{reason} (redirects are not followed; set url to the final address)"
                ),
            }
        } else {
            Delivery::Reject { reason }
        }
    }

    /// At most [`REASON_BODY_CHARS`] of a response body for a reason (findings without
    /// SQL only). Secrets and header values are masked before the text is flattened and
    /// cut, so a cut cannot leave half of one behind.
    fn body_snippet(&self, body: &[u8]) -> String {
        let text = self.scrubbed(&String::from_utf8_lossy(body));
        snippet(&text, REASON_BODY_CHARS)
    }

    /// `text` with every configured secret and header value masked.
    fn scrubbed(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.scrub {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "***");
            }
        }
        out
    }
}

/// Parses a `Retry-After` header value: delta-seconds or an HTTP-date (relative to
/// `now`; a date in the past is zero). `None` if it is neither.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits for u64 is still "a long time": saturate; the caller caps it.
        return Some(Duration::from_secs(
            value.parse::<u64>().unwrap_or(u64::MAX),
        ));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The configured URL, or the kind's public API; http(s) only.
fn parse_url(cfg: &Webhook) -> Result<reqwest::Url, String> {
    let text = match (&cfg.url, cfg.kind) {
        (Some(url), _) => url.as_str(),
        (None, WebhookKind::Pagerduty) => PAGERDUTY_URL,
        (None, WebhookKind::Opsgenie) => OPSGENIE_URL,
        (None, WebhookKind::Generic) => {
            return Err(
                "kind = \"generic\" needs url (e.g. url = \"https://example.com/hook\")".into(),
            )
        }
        (None, WebhookKind::Slack) => {
            return Err("kind = \"slack\" needs url (the incoming-webhook URL, \
                 https://hooks.slack.com/services/...)"
                .into())
        }
    };
    // The URL itself is not echoed: a Slack webhook URL is a credential.
    let url = reqwest::Url::parse(text.trim()).map_err(|e| {
        format!("url is not a valid absolute URL ({e}); write it as https://host/path")
    })?;
    match url.scheme() {
        "https" | "http" => {}
        other => {
            return Err(format!(
                "url scheme `{other}` is not supported; use https:// (or http://)"
            ))
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("url has no host; write it as https://host/path".into());
    }
    Ok(url)
}

/// A client that does not follow redirects, with rustls (ring) and the system's roots for
/// `https://` URLs. A plain `http://` URL gets an empty root store (TLS is never used, and
/// a host without CA certificates still works).
fn build_client(url: &reqwest::Url, timeout: Duration) -> Result<reqwest::Client, String> {
    use rustls_platform_verifier::BuilderVerifierExt;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?;
    let mut tls = if url.scheme() == "https" {
        builder
            .with_platform_verifier()
            .map_err(|e| {
                format!(
                    "cannot load the system's root certificates ({e}); install the CA \
                     certificates package (e.g. ca-certificates)"
                )
            })?
            .with_no_client_auth()
    } else {
        builder
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth()
    };
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("pgvigil/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {}", describe_error(&e)))
}

/// Remembers `value` for masking in reasons (short values would mask ordinary words).
fn push_scrub(scrub: &mut Vec<Zeroizing<String>>, value: &str) {
    if value.len() >= 4 {
        scrub.push(Zeroizing::new(value.to_string()));
    }
}

/// Lowercase hex HMAC-SHA256 of `body` under `key`.
fn sign(key: &str, body: &[u8]) -> String {
    use hmac::Mac;
    // HMAC takes keys of any length; the error arm is unreachable but handled.
    let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()) else {
        return String::new();
    };
    mac.update(body);
    hex(&mac.finalize().into_bytes())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// Reads at most `limit` bytes of the body; a read error ends it (what came is kept).
async fn read_bounded(response: &mut reqwest::Response, limit: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let take = chunk.len().min(limit - body.len());
                body.extend_from_slice(&chunk[..take]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    body
}

/// At most `max` characters of an untrusted body on one line: control characters become
/// spaces, runs of whitespace collapse.
fn snippet(text: &str, max: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    truncate(&flat.split_whitespace().collect::<Vec<_>>().join(" "), max)
}

/// A network error for a reason: its kind and causes, never the URL.
fn describe_error(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_builder() {
        "invalid request"
    } else if e.is_body() || e.is_decode() {
        "response body failed"
    } else {
        "request failed"
    };
    let mut out = kind.to_string();
    let mut source = e.source();
    let mut depth = 0;
    while let Some(cause) = source {
        let text = cause.to_string();
        if !text.is_empty() && !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
        depth += 1;
        if depth >= 8 {
            break;
        }
    }
    truncate(&out, 300)
}

/// At most `max` characters of `s`, with `…` when cut.
fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Escapes Slack's control characters (`&`, `<`, `>`), so finding text cannot form links
/// or mentions such as `<!channel>`.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `{"text": ...}`: the summary, rule, MITRE and dedup key lines, and the statement (cut
/// to about 500 characters) in a code block.
fn slack_payload(f: &Finding) -> serde_json::Value {
    let mut text = format!("*{}*\n", slack_escape(&f.summary()));
    text.push_str(&format!(
        "Rule: `{}` ({})\nMITRE: {} / {}\nDedup key: `{}`",
        slack_escape(&f.rule_id),
        slack_escape(&f.category),
        slack_escape(&f.mitre_tactic),
        slack_escape(&f.mitre_technique),
        slack_escape(&f.dedup_key),
    ));
    if let Some(statement) = f.statement.as_deref().filter(|s| !s.is_empty()) {
        // A ``` inside the statement would end the code block early.
        let statement = truncate(statement, SLACK_STATEMENT_CHARS).replace("```", "`\u{200b}``");
        text.push_str(&format!("\n```{}```", slack_escape(&statement)));
    }
    serde_json::json!({ "text": text })
}

/// PagerDuty's severity for ours.
fn pagerduty_severity(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "critical",
        Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Info => "info",
    }
}

/// Events API v2 `trigger` event.
fn pagerduty_payload(f: &Finding, routing_key: &str) -> serde_json::Result<serde_json::Value> {
    let mut payload = serde_json::json!({
        "summary": truncate(&f.summary(), 1024),
        "source": f.client_addr.as_deref().filter(|s| !s.is_empty()).unwrap_or("pgvigil"),
        "severity": pagerduty_severity(f.severity),
        "timestamp": f.ts,
        "group": f.category,
        "class": f.rule_id,
        "custom_details": serde_json::to_value(f)?,
    });
    if let (Some(db), Some(map)) = (&f.database, payload.as_object_mut()) {
        map.insert("component".into(), db.clone().into());
    }
    Ok(serde_json::json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": truncate(&f.dedup_key, 255),
        "payload": payload,
    }))
}

/// Opsgenie's priority for our severity.
fn opsgenie_priority(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "P1",
        Severity::High => "P2",
        Severity::Medium => "P3",
        Severity::Low => "P4",
        Severity::Info => "P5",
    }
}

/// Alert API create-alert request, within Opsgenie's field limits.
fn opsgenie_payload(f: &Finding) -> serde_json::Result<serde_json::Value> {
    let tags: Vec<String> = [&f.rule_id, &f.category, &f.mitre_tactic, &f.mitre_technique]
        .into_iter()
        .filter(|t| !t.is_empty())
        .map(|t| truncate(t, 50))
        .collect();
    // A flat string map of the finding's fields. Opsgenie caps details at 8000
    // characters: every field is cut to 500, and the statement gets what is left.
    let mut details = serde_json::Map::new();
    let mut statement = None;
    if let serde_json::Value::Object(fields) = serde_json::to_value(f)? {
        for (key, value) in fields {
            let text = match value {
                serde_json::Value::Null => continue,
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            if key == "statement" {
                statement = Some(text);
            } else {
                details.insert(key, truncate(&text, 500).into());
            }
        }
    }
    if let Some(text) = statement {
        let used: usize = details
            .iter()
            .map(|(k, v)| k.chars().count() + v.as_str().map_or(0, |s| s.chars().count()))
            .sum();
        let left = OPSGENIE_DETAILS_CHARS.saturating_sub(used + "statement".len());
        if left >= 20 {
            details.insert("statement".into(), truncate(&text, left).into());
        }
    }
    let mut description = format!(
        "{}\n\nRule: {} ({})\nMITRE: {} / {}\nDedup key: {}\nFirst seen: {}\nLast seen: {}",
        f.summary(),
        f.rule_id,
        f.category,
        f.mitre_tactic,
        f.mitre_technique,
        f.dedup_key,
        f.first_seen,
        f.last_seen,
    );
    if let Some(statement) = f.statement.as_deref().filter(|s| !s.is_empty()) {
        description.push_str("\n\nStatement:\n");
        description.push_str(statement);
    }
    let mut body = serde_json::json!({
        "message": truncate(&f.summary(), 130),
        "alias": truncate(&f.dedup_key, 512),
        "description": truncate(&description, 15000),
        "priority": opsgenie_priority(f.severity),
        "tags": tags,
        "details": details,
        "source": "pgvigil",
    });
    if let (Some(db), Some(map)) = (&f.database, body.as_object_mut()) {
        map.insert("entity".into(), truncate(db, 512).into());
    }
    Ok(body)
}

#[cfg(test)]
#[path = "webhook_tests.rs"]
mod tests;
