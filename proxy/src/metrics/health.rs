//! The metrics listener's HTTP side: `/metrics` (Prometheus text), `/healthz` (the process
//! answers) and `/readyz` (the upstream server accepts TCP connections), for container
//! HEALTHCHECKs and Kubernetes probes.
//!
//! A minimal HTTP/1.x responder rather than a web framework: three fixed GET paths, one
//! request per connection, the request head read with a size cap and a deadline (it is a
//! network input like any other), then the connection is closed.
//!
//! Readiness is a TCP (or Unix-socket) connect to the default upstream, bounded by a short
//! timeout; a prober also runs in the background and publishes `pgvigil_upstream_up`, which
//! the shipped "upstream unreachable" alert watches.

use metrics::Gauge;
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The longest request head read; anything longer is refused.
const MAX_HEAD: usize = 8 * 1024;
/// How long a client has to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a readiness connect may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the background prober checks the upstream.
const PROBE_EVERY: Duration = Duration::from_secs(5);
/// How often histograms are compacted (the exporter leaves it to the owner).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Where the upstream is, read fresh on each probe (a reload may change it).
pub type UpstreamOf = Arc<dyn Fn() -> (String, u16) + Send + Sync>;

/// The bound listener and the recorder's handle, waiting for [`Exporter::serve`].
pub struct Exporter {
    pub(super) listener: std::net::TcpListener,
    pub(super) handle: PrometheusHandle,
}

impl Exporter {
    /// Serves the three paths until the runtime stops; also runs the prober and upkeep.
    pub fn serve(self, upstream: UpstreamOf) {
        let up = metrics::gauge!("pgvigil_upstream_up");
        let listener = match self
            .listener
            .set_nonblocking(true)
            .and_then(|()| TcpListener::from_std(self.listener))
        {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "metrics listener unusable");
                return;
            }
        };
        let handle = self.handle;
        tokio::spawn({
            let handle = handle.clone();
            async move {
                let mut tick = tokio::time::interval(UPKEEP_EVERY);
                loop {
                    tick.tick().await;
                    handle.run_upkeep();
                }
            }
        });
        tokio::spawn({
            let (upstream, up) = (upstream.clone(), up.clone());
            async move {
                let mut tick = tokio::time::interval(PROBE_EVERY);
                loop {
                    tick.tick().await;
                    probe(&upstream, &up).await;
                }
            }
        });
        tokio::spawn(async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    // Out of descriptors and the like: wait rather than spin.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let (handle, upstream, up) = (handle.clone(), upstream.clone(), up.clone());
                tokio::spawn(async move {
                    let _ = respond(conn, &handle, &upstream, &up).await;
                });
            }
        });
    }
}

/// Whether the upstream accepts a connection now; sets `pgvigil_upstream_up`.
async fn probe(upstream: &UpstreamOf, up: &Gauge) -> bool {
    let (host, port) = upstream();
    let ok = tokio::time::timeout(PROBE_TIMEOUT, async {
        if host.starts_with('/') {
            // A Unix-socket directory, as libpq reads it.
            let path = format!("{host}/.s.PGSQL.{port}");
            tokio::net::UnixStream::connect(path).await.map(drop)
        } else {
            tokio::net::TcpStream::connect((host.as_str(), port))
                .await
                .map(drop)
        }
    })
    .await
    .is_ok_and(|r| r.is_ok());
    up.set(if ok { 1.0 } else { 0.0 });
    ok
}

/// Reads one request head and answers it.
async fn respond(
    conn: tokio::net::TcpStream,
    handle: &PrometheusHandle,
    upstream: &UpstreamOf,
    up: &Gauge,
) -> std::io::Result<()> {
    let mut reply = Reply {
        conn,
        head_only: false,
    };
    let conn = &mut reply;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let complete = tokio::time::timeout(HEAD_TIMEOUT, async {
        loop {
            let n = conn.conn.read(&mut buf).await?;
            if n == 0 {
                return Ok::<bool, std::io::Error>(false);
            }
            head.extend_from_slice(buf.get(..n).unwrap_or_default());
            if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
                return Ok(true);
            }
            if head.len() > MAX_HEAD {
                return Ok(false);
            }
        }
    })
    .await;
    if !matches!(complete, Ok(Ok(true))) {
        return write(conn, "400 Bad Request", "text/plain", "bad request\n").await;
    }
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method != "GET" && method != "HEAD" {
        return write(conn, "405 Method Not Allowed", "text/plain", "GET only\n").await;
    }
    // HEAD (wget --spider) gets the status line and headers only.
    conn.head_only = method == "HEAD";
    let path = target.split('?').next().unwrap_or("");
    match path {
        "/metrics" => {
            let body = handle.render();
            write(conn, "200 OK", "text/plain; version=0.0.4", &body).await
        }
        "/healthz" => write(conn, "200 OK", "text/plain", "ok\n").await,
        "/readyz" => {
            if probe(upstream, up).await {
                write(conn, "200 OK", "text/plain", "ready\n").await
            } else {
                write(
                    conn,
                    "503 Service Unavailable",
                    "text/plain",
                    "upstream unreachable\n",
                )
                .await
            }
        }
        _ => write(conn, "404 Not Found", "text/plain", "not found\n").await,
    }
}

/// The connection and whether the body is left out (HEAD).
struct Reply {
    conn: tokio::net::TcpStream,
    head_only: bool,
}

async fn write(
    reply: &mut Reply,
    status: &str,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    reply.conn.write_all(head.as_bytes()).await?;
    if !reply.head_only {
        reply.conn.write_all(body.as_bytes()).await?;
    }
    reply.conn.shutdown().await
}

/// `pgvigil health`: asks a running pgvigil's `/healthz` (or `/readyz`) at `addr` (an
/// unspecified address means this host) and says whether it answered 200. For container
/// HEALTHCHECKs on images without a shell or curl.
pub fn check(addr: std::net::SocketAddr, path: &str) -> Result<(), String> {
    use std::io::{Read, Write};
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let limit = Duration::from_secs(3);
    let mut s = std::net::TcpStream::connect_timeout(&addr, limit)
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    s.set_read_timeout(Some(limit))
        .and_then(|()| s.set_write_timeout(Some(limit)))
        .and_then(|()| s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes()))
        .map_err(|e| format!("{addr}{path}: {e}"))?;
    let mut reply = Vec::new();
    // Bounded: the status line is all that is needed.
    let _ = s.take(4096).read_to_end(&mut reply);
    let status = String::from_utf8_lossy(&reply);
    let line = status.lines().next().unwrap_or("no reply");
    if line.split_whitespace().nth(1) == Some("200") {
        Ok(())
    } else {
        Err(format!("{addr}{path}: {line}"))
    }
}
