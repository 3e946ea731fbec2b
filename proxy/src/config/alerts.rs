//! The `[rules]` and `[alerts.*]` tables: where detection rules come from and where
//! findings go. Shapes and defaults only; `detect::check` and `sinks::check` check them.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `[rules]`: the detection rule set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    /// Load the rule set built into the binary (the repository's `rules/` folder).
    #[serde(default = "default_true")]
    pub defaults: bool,
    /// A folder of `*.toml` rule files, loaded in addition to the defaults; a file whose
    /// `id` equals a default rule's replaces that rule.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Rule ids to switch off (defaults or the folder's).
    #[serde(default)]
    pub disable: Vec<String>,
    /// Rule ids to switch on that ship with `enabled = false` (the deny rules in `rules/`).
    #[serde(default)]
    pub enable: Vec<String>,
    /// `action = "block"` never blocks 127.0.0.0/8 or ::1 unless this is true.
    #[serde(default)]
    pub block_loopback: bool,
    /// Counting groups kept per rule (e.g. distinct client addresses); beyond it the
    /// least recently seen are evicted and counted in `pgvigil_detect_evictions_total`.
    #[serde(default = "default_max_groups")]
    pub max_groups: usize,
}

/// `[alerts]`: the sinks findings are delivered to, through the durable outbox.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alerts {
    /// Folder of the durable outbox (one subfolder per channel). Relative to the config
    /// file. Changing it takes effect at restart.
    #[serde(default = "default_outbox_dir")]
    pub outbox_dir: PathBuf,
    #[serde(default)]
    pub file: FileAlerts,
    #[serde(default)]
    pub postgres: Option<PostgresAlerts>,
    /// `[alerts.webhook.NAME]`.
    #[serde(default)]
    pub webhook: BTreeMap<String, Webhook>,
}

/// `[alerts.file]`: findings as JSON lines. Always on.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileAlerts {
    /// Relative to the config file.
    #[serde(default = "default_findings_path")]
    pub path: PathBuf,
    #[serde(default)]
    pub min_severity: super::Severity,
}

/// A secret given inline or read from a file (`{ file = "/run/secrets/x" }`).
#[derive(Clone, Deserialize)]
#[serde(untagged)]
pub enum Secret {
    Inline(String),
    File { file: PathBuf },
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secret::Inline(_) => f.write_str("Secret::Inline(***)"),
            Secret::File { file } => write!(f, "Secret::File({})", file.display()),
        }
    }
}

impl Secret {
    /// The secret's value; a file's content is trimmed of its trailing newline. `base`
    /// anchors a relative file path (the config file's folder).
    pub fn resolve(&self, base: &Path) -> Result<zeroize::Zeroizing<String>, String> {
        match self {
            Secret::Inline(s) => Ok(zeroize::Zeroizing::new(s.clone())),
            Secret::File { file } => {
                let path = if file.is_absolute() {
                    file.clone()
                } else {
                    base.join(file)
                };
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("cannot read secret file {}: {e}", path.display()))?;
                Ok(zeroize::Zeroizing::new(
                    text.trim_end_matches(['\n', '\r']).to_string(),
                ))
            }
        }
    }
}

/// `[alerts.postgres]`: findings inserted into a PostgreSQL table. Keys and defaults are
/// those of pgsense's PostgreSQL channel.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresAlerts {
    /// The channel's name in metrics and the outbox.
    #[serde(default = "default_postgres_name")]
    pub name: String,
    #[serde(default = "default_postgres_host")]
    pub host: String,
    #[serde(default = "default_postgres_port")]
    pub port: u16,
    #[serde(default = "default_postgres_name")]
    pub dbname: String,
    #[serde(default = "default_postgres_name")]
    pub username: String,
    #[serde(default)]
    pub password: Option<Secret>,
    /// ASCII letters, digits and underscores only.
    #[serde(default = "default_postgres_schema")]
    pub schema: String,
    /// ASCII letters, digits and underscores only.
    #[serde(default = "default_postgres_table")]
    pub table: String,
    #[serde(default)]
    pub tls: PostgresTls,
    #[serde(default)]
    pub min_severity: super::Severity,
    #[serde(default = "default_connect_timeout")]
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// First delay after a failed delivery; doubles each time, with jitter.
    #[serde(default = "default_retry_initial", with = "humantime_serde")]
    pub retry_initial: Duration,
    /// Longest delay between attempts (a `Retry-After` longer than this is cut to it).
    #[serde(default = "default_retry_max", with = "humantime_serde")]
    pub retry_max: Duration,
}

/// `[alerts.postgres.tls]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresTls {
    #[serde(default)]
    pub enabled: bool,
    /// Root CA to verify the server with; absent = the system's roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

/// `[alerts.webhook.NAME]`: an HTTP(S) endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    pub kind: WebhookKind,
    /// Required for `generic` and `slack`; `pagerduty` and `opsgenie` default to their
    /// public API (`https://events.pagerduty.com/v2/enqueue`,
    /// `https://api.opsgenie.com/v2/alerts`).
    #[serde(default)]
    pub url: Option<String>,
    /// Extra request headers (`generic`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// HMAC-SHA256 key for the `X-Pgvigil-Signature` header (`generic`).
    #[serde(default)]
    pub secret: Option<Secret>,
    /// PagerDuty Events API v2 integration key (`pagerduty`).
    #[serde(default)]
    pub routing_key: Option<Secret>,
    /// Opsgenie API key (`opsgenie`).
    #[serde(default)]
    pub api_key: Option<Secret>,
    #[serde(default)]
    pub min_severity: super::Severity,
    /// At most one request per this interval (Slack allows about one a second; the
    /// default is 1s for `slack`, none otherwise).
    #[serde(default, with = "humantime_serde")]
    pub min_interval: Option<Duration>,
    /// Per request.
    #[serde(default = "default_http_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// First delay after a failed delivery; doubles each time, with jitter.
    #[serde(default = "default_retry_initial", with = "humantime_serde")]
    pub retry_initial: Duration,
    /// Longest delay between attempts (a `Retry-After` longer than this is cut to it).
    #[serde(default = "default_retry_max", with = "humantime_serde")]
    pub retry_max: Duration,
}

/// What a webhook speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookKind {
    /// The finding as JSON.
    Generic,
    /// Slack incoming webhook (`{"text": ...}`).
    Slack,
    /// PagerDuty Events API v2.
    Pagerduty,
    /// Opsgenie Alert API.
    Opsgenie,
}

/// Retry timing of a network sink (its `retry_initial` and `retry_max` keys).
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub initial: Duration,
    pub max: Duration,
}

impl PostgresAlerts {
    pub fn retry(&self) -> Retry {
        Retry {
            initial: self.retry_initial,
            max: self.retry_max,
        }
    }
}

impl Webhook {
    pub fn retry(&self) -> Retry {
        Retry {
            initial: self.retry_initial,
            max: self.retry_max,
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_max_groups() -> usize {
    100_000
}
fn default_outbox_dir() -> PathBuf {
    PathBuf::from("outbox")
}
fn default_findings_path() -> PathBuf {
    PathBuf::from("findings.jsonl")
}
fn default_postgres_name() -> String {
    "postgres".to_string()
}
fn default_postgres_host() -> String {
    "localhost".to_string()
}
fn default_postgres_port() -> u16 {
    5432
}
fn default_postgres_schema() -> String {
    "pgvigil".to_string()
}
fn default_postgres_table() -> String {
    "findings".to_string()
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_http_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_retry_initial() -> Duration {
    Duration::from_secs(1)
}
fn default_retry_max() -> Duration {
    Duration::from_secs(300)
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            defaults: true,
            dir: None,
            disable: Vec::new(),
            enable: Vec::new(),
            block_loopback: false,
            max_groups: default_max_groups(),
        }
    }
}

impl Default for Alerts {
    fn default() -> Self {
        Alerts {
            outbox_dir: default_outbox_dir(),
            file: FileAlerts::default(),
            postgres: None,
            webhook: BTreeMap::new(),
        }
    }
}

impl Default for FileAlerts {
    fn default() -> Self {
        FileAlerts {
            path: default_findings_path(),
            min_severity: super::Severity::default(),
        }
    }
}
