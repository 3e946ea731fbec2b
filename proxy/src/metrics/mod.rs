//! Prometheus metrics: names in one place, handles registered once (a per-event registry
//! lookup would sit on the relay's hot path), and the HTTP exporter (`health`: `/metrics`,
//! `/healthz`, `/readyz`).

pub mod health;

use crate::sql::Class;
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics::{Counter, Gauge, Histogram};
use std::net::SocketAddr;
use std::time::Duration;

pub use health::{Exporter, UpstreamOf};

/// Errors of the metrics layer.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot start the metrics listener on {addr}: {detail}")]
    Listen { addr: SocketAddr, detail: String },
}

/// How a client connection ended up, for `pgvigil_connections_total{result}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnResult {
    /// Authenticated and relayed.
    Ok,
    /// Authentication failed (wrong password, refused by the server or by the proxy).
    AuthFailure,
    /// Refused: `max_client_conn` reached.
    TooMany,
    /// Did not authenticate within `startup_timeout`.
    Timeout,
    /// Broke the protocol before authenticating.
    ProtocolError,
    /// The server could not be reached.
    UpstreamError,
    /// A cancel request (a connection of its own).
    Cancel,
    /// Refused: the client address is blocked by a detection rule.
    Blocked,
    /// Refused: `max_startup_conn` connections were already logging in.
    StartupFull,
    /// Refused: `max_startup_per_addr` connections from that address were logging in.
    AddrLimit,
    /// Closed: sent nothing within `first_byte_timeout`.
    Silent,
    /// Refused: a PROXY protocol header from a peer not in `proxy_trusted`.
    ProxyUntrusted,
}

impl ConnResult {
    fn label(self) -> &'static str {
        match self {
            ConnResult::Ok => "ok",
            ConnResult::AuthFailure => "auth_failure",
            ConnResult::TooMany => "too_many",
            ConnResult::Timeout => "timeout",
            ConnResult::ProtocolError => "protocol_error",
            ConnResult::UpstreamError => "upstream_error",
            ConnResult::Cancel => "cancel",
            ConnResult::Blocked => "blocked",
            ConnResult::StartupFull => "startup_full",
            ConnResult::AddrLimit => "addr_limit",
            ConnResult::Silent => "first_byte_timeout",
            ConnResult::ProxyUntrusted => "proxy_untrusted",
        }
    }
    const ALL: [ConnResult; 12] = [
        ConnResult::Ok,
        ConnResult::AuthFailure,
        ConnResult::TooMany,
        ConnResult::Timeout,
        ConnResult::ProtocolError,
        ConnResult::UpstreamError,
        ConnResult::Cancel,
        ConnResult::Blocked,
        ConnResult::StartupFull,
        ConnResult::AddrLimit,
        ConnResult::Silent,
        ConnResult::ProxyUntrusted,
    ];
}

/// Outcome of a cancel request.
#[derive(Debug, Clone, Copy)]
pub enum CancelResult {
    Forwarded,
    Unknown,
    Error,
}

/// Registered metric handles.
pub struct Metrics {
    pub client_connections: Gauge,
    connections: [Counter; 12],
    /// Server connections in their authentication phase now.
    pub upstream_auth_connections: Gauge,
    /// Times a session stopped reading its client until the server's replies drained.
    pub pipeline_pauses: Counter,
    pub auth_failures: Counter,
    pub bytes_in: Counter,
    pub bytes_out: Counter,
    pub upstream_connect_seconds: Histogram,
    /// `pgvigil_auth_seconds{result}`: from the startup message to logged in (or refused).
    auth_seconds: [Histogram; 2],
    /// `pgvigil_statement_duration_seconds{class}`, indexed like [`CLASSES`].
    statement_seconds: Vec<Histogram>,
    cancel: [Counter; 3],
    /// `pgvigil_audit_events_total{result}`: every event emitted is counted once.
    pub audit_written: Counter,
    pub audit_failed: Counter,
    pub audit_dropped: Counter,
    pub audit_write_errors: Counter,
    pub audit_queue_depth: Gauge,
    /// Indexed by [`Metrics::statement`]: class × user kind × noise.
    statements: Vec<Counter>,
    pub parse_fallback: Counter,
    pub classify_cache_hits: Counter,
    pub classify_cache_misses: Counter,
}

/// Classes in the order of `pgvigil_statements_total`'s handle table.
const CLASSES: [Class; 7] = [
    Class::Read,
    Class::Write,
    Class::Function,
    Class::Role,
    Class::Ddl,
    Class::Misc,
    Class::MiscSet,
];

impl Metrics {
    /// Registers every metric with the installed recorder (or the no-op one).
    pub fn new() -> Metrics {
        describe_gauge!("pgvigil_client_connections", "Client connections open now");
        describe_counter!("pgvigil_connections_total", "Client connections by outcome");
        describe_counter!("pgvigil_auth_failures_total", "Failed authentications");
        describe_counter!(
            "pgvigil_statements_denied_total",
            "Statements refused before reaching the server, by the rule or policy that refused them"
        );
        describe_gauge!(
            "pgvigil_upstream_auth_connections",
            "Server connections in their authentication phase now"
        );
        describe_counter!(
            "pgvigil_pipeline_pauses_total",
            "Times a session stopped reading its client until replies drained"
        );
        describe_counter!(
            "pgvigil_bytes_total",
            "Bytes relayed, by direction (in = from clients)"
        );
        describe_histogram!(
            "pgvigil_upstream_connect_seconds",
            "Time to connect to PostgreSQL (TCP and TLS)"
        );
        describe_histogram!(
            "pgvigil_auth_seconds",
            "Time from the startup message to logged in or refused, by result"
        );
        describe_histogram!(
            "pgvigil_statement_duration_seconds",
            "Statement duration as the proxy sees it (request to the server's completion), by class"
        );
        describe_gauge!(
            "pgvigil_upstream_up",
            "1 when the default upstream accepted a connection at the last probe, else 0"
        );
        describe_counter!(
            "pgvigil_cancel_requests_total",
            "Cancel requests by outcome"
        );
        describe_counter!(
            "pgvigil_audit_events_total",
            "Audit events by fate: written (lines in the file), failed (write failed), dropped (queue full, on_backpressure = drop)"
        );
        describe_counter!(
            "pgvigil_audit_write_errors_total",
            "Audit log write or fsync calls that failed"
        );
        describe_gauge!(
            "pgvigil_audit_queue_depth",
            "Audit events waiting for the writer"
        );
        describe_counter!(
            "pgvigil_statements_total",
            "Statements seen, by class, user kind and noise (written or not)"
        );
        describe_counter!(
            "pgvigil_parse_fallback_total",
            "Statements sqlparser could not parse, classified from tokens"
        );
        describe_counter!(
            "pgvigil_classify_cache_hits_total",
            "Statement classifications served from the cache"
        );
        describe_counter!(
            "pgvigil_classify_cache_misses_total",
            "Statement classifications computed"
        );
        let mut statements = Vec::with_capacity(CLASSES.len() * 4);
        for class in CLASSES {
            for user_kind in ["human", "service"] {
                for noise in ["false", "true"] {
                    statements.push(counter!(
                        "pgvigil_statements_total",
                        "class" => class.as_str(),
                        "user_kind" => user_kind,
                        "noise" => noise
                    ));
                }
            }
        }
        Metrics {
            statements,
            auth_seconds: ["ok", "failure"]
                .map(|r| histogram!("pgvigil_auth_seconds", "result" => r)),
            statement_seconds: CLASSES
                .iter()
                .map(|c| histogram!("pgvigil_statement_duration_seconds", "class" => c.as_str()))
                .collect(),
            parse_fallback: counter!("pgvigil_parse_fallback_total"),
            classify_cache_hits: counter!("pgvigil_classify_cache_hits_total"),
            classify_cache_misses: counter!("pgvigil_classify_cache_misses_total"),
            client_connections: gauge!("pgvigil_client_connections"),
            connections: ConnResult::ALL
                .map(|r| counter!("pgvigil_connections_total", "result" => r.label())),
            auth_failures: counter!("pgvigil_auth_failures_total"),
            upstream_auth_connections: gauge!("pgvigil_upstream_auth_connections"),
            pipeline_pauses: counter!("pgvigil_pipeline_pauses_total"),
            bytes_in: counter!("pgvigil_bytes_total", "direction" => "in"),
            bytes_out: counter!("pgvigil_bytes_total", "direction" => "out"),
            upstream_connect_seconds: histogram!("pgvigil_upstream_connect_seconds"),
            cancel: ["forwarded", "unknown", "error"]
                .map(|r| counter!("pgvigil_cancel_requests_total", "result" => r)),
            audit_written: counter!("pgvigil_audit_events_total", "result" => "written"),
            audit_failed: counter!("pgvigil_audit_events_total", "result" => "failed"),
            audit_dropped: counter!("pgvigil_audit_events_total", "result" => "dropped"),
            audit_write_errors: counter!("pgvigil_audit_write_errors_total"),
            audit_queue_depth: gauge!("pgvigil_audit_queue_depth"),
        }
    }

    /// Counts a finished client connection.
    pub fn connection(&self, r: ConnResult) {
        self.connections[r as usize].increment(1);
    }

    /// Counts a statement.
    pub fn statement(&self, class: Class, service: bool, noise: bool) {
        let c = CLASSES.iter().position(|&k| k == class).unwrap_or(0);
        let i = c * 4 + usize::from(service) * 2 + usize::from(noise);
        if let Some(counter) = self.statements.get(i) {
            counter.increment(1);
        }
    }

    /// Records a statement's duration (one atomic bucket append: cheap on the hot path).
    pub fn statement_duration(&self, class: Class, took: Duration) {
        let c = CLASSES.iter().position(|&k| k == class).unwrap_or(0);
        if let Some(h) = self.statement_seconds.get(c) {
            h.record(took.as_secs_f64());
        }
    }

    /// Records how long a login took, succeeded or not.
    pub fn auth_time(&self, ok: bool, took: Duration) {
        self.auth_seconds[usize::from(!ok)].record(took.as_secs_f64());
    }

    /// Counts a cancel request.
    pub fn cancel(&self, r: CancelResult) {
        self.cancel[r as usize].increment(1);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Buckets for latencies from sub-millisecond to a minute.
const LATENCY_BUCKETS: [f64; 17] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 60.0,
];

/// Installs the Prometheus recorder and binds the metrics listener when `addr` is given
/// (served once the proxy is up: see [`Exporter::serve`]). Must run before
/// [`Metrics::new`].
pub fn install(addr: Option<SocketAddr>) -> Result<Option<Exporter>, MetricsError> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    let err = |detail: String| MetricsError::Listen { addr, detail };
    // Bound first: a taken port is reported before anything is installed.
    let listener = std::net::TcpListener::bind(addr).map_err(|e| err(e.to_string()))?;
    let mut builder = metrics_exporter_prometheus::PrometheusBuilder::new();
    for name in [
        "pgvigil_upstream_connect_seconds",
        "pgvigil_auth_seconds",
        "pgvigil_statement_duration_seconds",
    ] {
        builder = builder
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full(name.into()),
                &LATENCY_BUCKETS,
            )
            .map_err(|e| err(e.to_string()))?;
    }
    let handle = builder.install_recorder().map_err(|e| err(e.to_string()))?;
    Ok(Some(Exporter { listener, handle }))
}
