//! The configuration file's shape: one serde struct per TOML table, unknown keys refused.
//!
//! Defaults live here, next to the keys, so the README's reference and the code cannot drift
//! apart silently: each default has a function named after its key.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub listen: Listen,
    #[serde(default)]
    pub upstream: Upstream,
    /// PgBouncer-style routes: a client asking for database NAME goes to this upstream.
    #[serde(default)]
    pub databases: BTreeMap<String, DatabaseRoute>,
    #[serde(default)]
    pub auth: super::Auth,
    #[serde(default)]
    pub audit: Audit,
    #[serde(default)]
    pub metrics: Metrics,
    #[serde(default)]
    pub rules: super::Rules,
    #[serde(default)]
    pub alerts: super::Alerts,
    #[serde(default)]
    pub access: super::Access,
    #[serde(default)]
    pub admin: super::Admin,
    /// Replicas sharing state through Redis; absent = this process alone.
    #[serde(default)]
    pub cluster: Option<super::Cluster>,
}

/// `[listen]`: the client-facing socket.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    #[serde(default = "default_listen_addr")]
    pub addr: SocketAddr,
    /// Authenticated sessions; a login beyond this is refused with FATAL 53300 (after the
    /// TLS negotiation, so the client can read why).
    #[serde(default = "default_max_client_conn")]
    pub max_client_conn: usize,
    /// Connections that have not logged in yet, in a budget of their own: they never take
    /// an authenticated session's place.
    #[serde(default = "default_max_startup_conn")]
    pub max_startup_conn: usize,
    /// Connections not logged in yet from one client address (one IPv6 /64).
    #[serde(default = "default_max_startup_per_addr")]
    pub max_startup_per_addr: usize,
    /// A connection that sends nothing for this long after it opened is closed.
    #[serde(default = "default_first_byte_timeout", with = "humantime_serde")]
    pub first_byte_timeout: Duration,
    /// From accept to authenticated.
    #[serde(default = "default_startup_timeout", with = "humantime_serde")]
    pub startup_timeout: Duration,
    /// Client messages of one session still waiting for the server's reply; past this the
    /// proxy stops reading from that client until replies drain (TCP pushes back).
    #[serde(default = "default_max_pending_messages")]
    pub max_pending_messages: usize,
    /// Bytes of statement text held for those messages; same effect as the count.
    #[serde(default = "default_max_pending_bytes")]
    pub max_pending_bytes: usize,
    /// On SIGTERM/SIGINT: how long sessions may drain before they are closed.
    #[serde(default = "default_shutdown_timeout", with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// Threads that run sessions, each an event loop of its own (sessions are spread
    /// over them). One, like PgBouncer: on a host shared with PostgreSQL that costs the
    /// least CPU per transaction. Fixed until restart.
    #[serde(default = "default_threads")]
    pub threads: usize,
    /// Accept the PROXY protocol (v1 or v2) header from a load balancer.
    #[serde(default)]
    pub proxy_protocol: bool,
    /// The load balancers (CIDR) whose PROXY header is believed; a header from any other
    /// peer is refused.
    #[serde(default)]
    pub proxy_trusted: Vec<ipnet::IpNet>,
    #[serde(default)]
    pub tls: ListenTls,
}

/// `[listen.tls]`: TLS on the client side.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenTls {
    #[serde(default = "default_client_tls_mode")]
    pub mode: ClientTlsMode,
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// CA that signs client certificates (verify-ca, verify-full).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

/// What the proxy demands of clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientTlsMode {
    /// Refuse SSLRequest; plaintext only.
    Disable,
    /// TLS when the client asks, plaintext otherwise.
    Allow,
    /// TLS only.
    Require,
    /// TLS and a client certificate signed by `ca_file`.
    VerifyCa,
    /// As verify-ca, and the certificate's CN must equal the user name.
    VerifyFull,
}

/// `[upstream]`: the PostgreSQL server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    #[serde(default = "default_upstream_host")]
    pub host: String,
    #[serde(default = "default_upstream_port")]
    pub port: u16,
    #[serde(default = "default_sslmode")]
    pub sslmode: SslMode,
    /// Root CA for verify-ca / verify-full; empty means none.
    #[serde(default)]
    pub ca_file: String,
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Server connections in the authentication phase at once (every route together);
    /// logins beyond it wait for a place, within `startup_timeout`.
    #[serde(default = "default_max_auth_conn")]
    pub max_auth_conn: usize,
    /// Of those, how many one client address (one IPv6 /64) may hold.
    #[serde(default = "default_max_auth_per_addr")]
    pub max_auth_per_addr: usize,
}

/// `[databases.NAME]`: any key of `[upstream]` overridden, plus the database name upstream.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseRoute {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub sslmode: Option<SslMode>,
    pub ca_file: Option<String>,
    #[serde(default, with = "humantime_serde")]
    pub connect_timeout: Option<Duration>,
    pub dbname: Option<String>,
}

/// libpq's `sslmode`, with libpq's meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    /// The libpq spelling, for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// `[audit]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Audit {
    /// JSON lines file; "-" for stdout.
    #[serde(default = "default_audit_log")]
    pub log: String,
    /// Events waiting for the writer before sessions wait (or drop, see `on_backpressure`).
    #[serde(default = "default_queue_capacity")]
    pub queue_capacity: usize,
    /// `json` (one JSON object per line) or `pgaudit` (pgAudit's line format).
    #[serde(default)]
    pub format: AuditFormat,
    /// What a session does when the queue is full: `wait` (nothing lost) or `drop`.
    #[serde(default)]
    pub on_backpressure: Backpressure,
    /// When a statement's result may reach the client: once its event is `queued`,
    /// `written` to the file, or `synced` to disk.
    #[serde(default)]
    pub durability: Durability,
    /// While the log cannot be written: go on (`continue`) or refuse statements (`refuse`).
    #[serde(default)]
    pub on_write_error: super::OnWriteError,
    /// Users whose statements are counted but not written (exact names and `*` globs).
    #[serde(default)]
    pub service_accounts: Vec<String>,
    /// Write service accounts' statements too.
    #[serde(default)]
    pub log_service_accounts: bool,
    /// Write catalog noise (tool introspection queries) too.
    #[serde(default)]
    pub log_noise: bool,
    /// How old the noise filter's knowledge of a database's functions may get before a
    /// login asks the catalog again (see `audit::shadow`).
    #[serde(default = "default_noise_catalog_refresh", with = "humantime_serde")]
    pub noise_catalog_refresh: Duration,
    /// Add Bind parameters to extended-protocol statement events.
    #[serde(default)]
    pub log_parameters: bool,
    /// Each logged parameter is cut to this many bytes.
    #[serde(default = "default_log_parameter_max_bytes")]
    pub log_parameter_max_bytes: usize,
    /// `passwords` (always) or `literals` (every literal becomes `?`).
    #[serde(default)]
    pub redact: crate::sql::Redact,
    /// Statements longer than this are classified from the tokens of their prefix.
    #[serde(default = "default_max_parse_bytes")]
    pub max_parse_bytes: usize,
    /// Memory for cached classifications.
    #[serde(default = "default_classify_cache_bytes")]
    pub classify_cache_bytes: usize,
    /// Built-in rotation: once the log reaches this size it is renamed `LOG.1` (older ones
    /// shift up) and a new file starts. Absent = off (logrotate and SIGUSR1 instead).
    #[serde(default)]
    pub rotate_size: Option<super::ByteSize>,
    /// Rotated files kept (`LOG.1` .. `LOG.N`); the oldest is deleted.
    #[serde(default = "default_rotate_keep")]
    pub rotate_keep: usize,
}

/// `[audit] format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditFormat {
    #[default]
    Json,
    Pgaudit,
}

/// `[audit] durability`: what must have happened to a statement's event before the client
/// sees the statement's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// In the writer's queue (lost if pgvigil is killed before the writer gets to it).
    Queued,
    /// Written to the file (survives a kill of pgvigil; the kernel has it).
    #[default]
    Written,
    /// Written and fsynced (survives a power loss).
    Synced,
}

/// `[audit] on_backpressure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backpressure {
    /// The session waits for room: nothing is lost, the client is slowed down.
    #[default]
    Wait,
    /// The event is dropped and counted in `pgvigil_audit_events_total{result="dropped"}`.
    Drop,
}

/// `[metrics]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    /// Prometheus listener; absent = off.
    pub listen: Option<SocketAddr>,
}

fn default_listen_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 6432))
}
fn default_max_client_conn() -> usize {
    1000
}
fn default_max_startup_conn() -> usize {
    512
}
fn default_max_startup_per_addr() -> usize {
    64
}
fn default_first_byte_timeout() -> Duration {
    Duration::from_secs(3)
}
fn default_max_pending_messages() -> usize {
    4096
}
fn default_threads() -> usize {
    1
}

fn default_max_pending_bytes() -> usize {
    8 * 1024 * 1024
}
fn default_max_auth_conn() -> usize {
    16
}
fn default_max_auth_per_addr() -> usize {
    4
}
fn default_noise_catalog_refresh() -> Duration {
    Duration::from_secs(60)
}
fn default_startup_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_shutdown_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_client_tls_mode() -> ClientTlsMode {
    ClientTlsMode::Allow
}
fn default_upstream_host() -> String {
    "127.0.0.1".to_string()
}
fn default_upstream_port() -> u16 {
    5432
}
fn default_sslmode() -> SslMode {
    SslMode::Prefer
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_audit_log() -> String {
    "audit.jsonl".to_string()
}
fn default_queue_capacity() -> usize {
    65_536
}
fn default_log_parameter_max_bytes() -> usize {
    256
}
fn default_max_parse_bytes() -> usize {
    64 * 1024
}
fn default_rotate_keep() -> usize {
    10
}
fn default_classify_cache_bytes() -> usize {
    16 * 1024 * 1024
}

impl Default for Listen {
    fn default() -> Self {
        Listen {
            addr: default_listen_addr(),
            max_client_conn: default_max_client_conn(),
            max_startup_conn: default_max_startup_conn(),
            max_startup_per_addr: default_max_startup_per_addr(),
            first_byte_timeout: default_first_byte_timeout(),
            startup_timeout: default_startup_timeout(),
            max_pending_messages: default_max_pending_messages(),
            max_pending_bytes: default_max_pending_bytes(),
            shutdown_timeout: default_shutdown_timeout(),
            threads: default_threads(),
            proxy_protocol: false,
            proxy_trusted: Vec::new(),
            tls: ListenTls::default(),
        }
    }
}

impl Default for ListenTls {
    fn default() -> Self {
        ListenTls {
            mode: default_client_tls_mode(),
            cert_file: None,
            key_file: None,
            ca_file: None,
        }
    }
}

impl Default for Upstream {
    fn default() -> Self {
        Upstream {
            host: default_upstream_host(),
            port: default_upstream_port(),
            sslmode: default_sslmode(),
            ca_file: String::new(),
            connect_timeout: default_connect_timeout(),
            max_auth_conn: default_max_auth_conn(),
            max_auth_per_addr: default_max_auth_per_addr(),
        }
    }
}

impl Default for Audit {
    fn default() -> Self {
        Audit {
            log: default_audit_log(),
            queue_capacity: default_queue_capacity(),
            format: AuditFormat::default(),
            on_backpressure: Backpressure::default(),
            durability: Durability::default(),
            on_write_error: super::OnWriteError::default(),
            service_accounts: Vec::new(),
            log_service_accounts: false,
            log_noise: false,
            noise_catalog_refresh: default_noise_catalog_refresh(),
            log_parameters: false,
            log_parameter_max_bytes: default_log_parameter_max_bytes(),
            redact: crate::sql::Redact::default(),
            max_parse_bytes: default_max_parse_bytes(),
            classify_cache_bytes: default_classify_cache_bytes(),
            rotate_size: None,
            rotate_keep: default_rotate_keep(),
        }
    }
}
