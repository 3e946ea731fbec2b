//! Admission before login: the budgets that keep clients who have not proved who they are
//! from taking the places of those who have, or the server's.
//!
//! Four budgets, each with a clear owner:
//! - `max_startup_conn`: connections that have not logged in yet (accept to login), in a
//!   budget of their own, so established sessions never compete with them;
//! - `max_startup_per_addr`: of those, per client address, so one address cannot fill it;
//! - `max_client_conn`: authenticated sessions; taken after the TLS negotiation, so a client
//!   refused for it reads the reason (libpq shows "error during SSL exchange" otherwise);
//! - `[upstream] max_auth_conn` / `max_auth_per_addr`: server connections still in their
//!   authentication phase, the only pre-login cost the server itself pays.
//!
//! An IPv6 client counts by its /64: a single host usually holds the whole prefix, so
//! counting addresses one by one would be no limit at all. Refusals are counted in metrics
//! and audited at most once per address and minute (an event that carries how many were
//! refused since the last one), so a flood cannot flood the audit log.

use dashmap::DashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// How often one address's refusals are audited.
const REFUSAL_AUDIT_EVERY: Duration = Duration::from_secs(60);
/// Addresses remembered for the refusal rate limit; past this, old entries are forgotten
/// (and if every entry is recent, the newest addresses are counted in metrics only).
const REFUSAL_MEMORY: usize = 10_000;

/// The key a client address is counted under: IPv4 as is (IPv4-mapped IPv6 too), IPv6 by
/// its /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddrKey(IpAddr);

impl AddrKey {
    /// The counting key of `ip`.
    pub fn of(ip: IpAddr) -> AddrKey {
        match ip {
            IpAddr::V4(_) => AddrKey(ip),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => AddrKey(IpAddr::V4(v4)),
                None => {
                    let s = v6.segments();
                    AddrKey(IpAddr::V6(Ipv6Addr::new(
                        s[0], s[1], s[2], s[3], 0, 0, 0, 0,
                    )))
                }
            },
        }
    }
}

/// Why admission refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `max_startup_conn` connections are already logging in.
    StartupFull,
    /// This address already has `max_startup_per_addr` connections logging in.
    AddrLimit,
    /// `max_client_conn` sessions are established.
    SessionsFull,
    /// A PROXY protocol header from a peer not in `proxy_trusted`.
    UntrustedProxyHeader,
}

impl Refusal {
    /// The audit event's and the log's reason.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::StartupFull => "max_startup_conn reached: too many connections logging in",
            Refusal::AddrLimit => {
                "max_startup_per_addr reached: too many connections logging in from this address"
            }
            Refusal::SessionsFull => "max_client_conn reached",
            Refusal::UntrustedProxyHeader => {
                "PROXY protocol header from a peer not in proxy_trusted"
            }
        }
    }

    /// The FATAL the client is told: PostgreSQL's 53300 wording for the budgets, with a
    /// hint naming the setting.
    pub fn client_message(self) -> (&'static str, &'static str, Option<&'static str>) {
        match self {
            Refusal::StartupFull => (
                "53300",
                "sorry, too many clients already",
                Some("pgvigil: too many connections are logging in at once ([listen] max_startup_conn); try again"),
            ),
            Refusal::AddrLimit => (
                "53300",
                "sorry, too many clients already",
                Some("pgvigil: too many connections from this address are logging in at once ([listen] max_startup_per_addr)"),
            ),
            Refusal::SessionsFull => ("53300", "sorry, too many clients already", None),
            Refusal::UntrustedProxyHeader => (
                "08P01",
                "PROXY protocol header from an address that is not a trusted load balancer",
                Some("list the load balancer in [listen] proxy_trusted"),
            ),
        }
    }
}

/// Per-address counts of one budget, with a wake-up for those waiting on it.
struct AddrCounts {
    counts: DashMap<AddrKey, usize>,
    freed: Notify,
}

impl AddrCounts {
    fn new() -> Arc<AddrCounts> {
        Arc::new(AddrCounts {
            counts: DashMap::new(),
            freed: Notify::new(),
        })
    }

    fn try_take(self: &Arc<Self>, key: AddrKey, max: usize) -> Option<AddrSlot> {
        let mut n = self.counts.entry(key).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(AddrSlot {
            counts: self.clone(),
            key,
        })
    }
}

/// One place in a per-address budget, given back on drop.
pub struct AddrSlot {
    counts: Arc<AddrCounts>,
    key: AddrKey,
}

impl Drop for AddrSlot {
    fn drop(&mut self) {
        // remove_if under the shard lock: an entry at zero is removed, so the map only
        // holds addresses that have connections right now.
        if let Some(mut n) = self.counts.counts.get_mut(&self.key) {
            *n = n.saturating_sub(1);
        }
        self.counts.counts.remove_if(&self.key, |_, n| *n == 0);
        self.counts.freed.notify_waiters();
    }
}

/// A connection's places while it logs in (the global budget and its address's), released
/// when it becomes a session or ends.
pub struct StartupTicket {
    _global: OwnedSemaphorePermit,
    addr: Option<AddrSlot>,
}

/// A server connection's places while it authenticates.
pub struct AuthTicket {
    _global: OwnedSemaphorePermit,
    _addr: AddrSlot,
    gauge: metrics::Gauge,
}

impl Drop for AuthTicket {
    fn drop(&mut self) {
        self.gauge.decrement(1.0);
    }
}

/// What the budgets allow, fixed at startup (a reload does not resize them).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_client_conn: usize,
    pub max_startup_conn: usize,
    pub max_startup_per_addr: usize,
    pub max_auth_conn: usize,
    pub max_auth_per_addr: usize,
}

/// The budgets, shared by the listener and every connection.
pub struct Admission {
    limits: Limits,
    startup: Arc<Semaphore>,
    sessions: Arc<Semaphore>,
    upstream_auth: Arc<Semaphore>,
    startup_per_addr: Arc<AddrCounts>,
    auth_per_addr: Arc<AddrCounts>,
    /// Per address: when its refusals were last audited, and how many since.
    refusals: DashMap<AddrKey, (Instant, u64)>,
    auth_gauge: metrics::Gauge,
}

impl Admission {
    /// Budgets of `limits`; `auth_gauge` follows the server connections authenticating.
    pub fn new(limits: Limits, auth_gauge: metrics::Gauge) -> Admission {
        Admission {
            limits,
            startup: Arc::new(Semaphore::new(limits.max_startup_conn)),
            sessions: Arc::new(Semaphore::new(limits.max_client_conn)),
            upstream_auth: Arc::new(Semaphore::new(limits.max_auth_conn)),
            startup_per_addr: AddrCounts::new(),
            auth_per_addr: AddrCounts::new(),
            refusals: DashMap::new(),
            auth_gauge,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// A place for a new connection. `addr` is `None` for a trusted load balancer, whose
    /// clients are counted once its PROXY header names them ([`Admission::bind_addr`]).
    pub fn admit(&self, addr: Option<IpAddr>) -> Result<StartupTicket, Refusal> {
        let addr = match addr {
            Some(ip) => Some(self.addr_slot(ip)?),
            None => None,
        };
        let global = self
            .startup
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::StartupFull)?;
        Ok(StartupTicket {
            _global: global,
            addr,
        })
    }

    /// Counts a connection under the client address its PROXY header gave.
    pub fn bind_addr(&self, ticket: &mut StartupTicket, ip: IpAddr) -> Result<(), Refusal> {
        ticket.addr = Some(self.addr_slot(ip)?);
        Ok(())
    }

    fn addr_slot(&self, ip: IpAddr) -> Result<AddrSlot, Refusal> {
        self.startup_per_addr
            .try_take(AddrKey::of(ip), self.limits.max_startup_per_addr)
            .ok_or(Refusal::AddrLimit)
    }

    /// A session's place (`max_client_conn`), held for the session's life.
    pub fn session(&self) -> Result<OwnedSemaphorePermit, Refusal> {
        self.sessions
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::SessionsFull)
    }

    /// Waits for a place to authenticate a server connection: first among the client
    /// address's own (`max_auth_per_addr`), then globally (`max_auth_conn`). The caller
    /// bounds the wait (the startup timeout).
    pub async fn upstream_auth(&self, ip: IpAddr) -> AuthTicket {
        let key = AddrKey::of(ip);
        let addr = loop {
            // Created before the check, so a place freed in between still wakes us.
            let freed = self.auth_per_addr.freed.notified();
            if let Some(slot) = self
                .auth_per_addr
                .try_take(key, self.limits.max_auth_per_addr)
            {
                break slot;
            }
            freed.await;
        };
        let global = match self.upstream_auth.clone().acquire_owned().await {
            Ok(p) => p,
            // The semaphore is never closed; should it be, waiting is over.
            Err(_) => std::future::pending().await,
        };
        self.auth_gauge.increment(1.0);
        AuthTicket {
            _global: global,
            _addr: addr,
            gauge: self.auth_gauge.clone(),
        }
    }

    /// Whether a refusal of `ip` should be audited now: `Some(n)` at most once per address
    /// and minute, `n` being the refusals of that address not audited since.
    pub fn audit_refusal(&self, ip: IpAddr) -> Option<u64> {
        let key = AddrKey::of(ip);
        let now = Instant::now();
        if let Some(mut e) = self.refusals.get_mut(&key) {
            let (since, n) = *e;
            if now.duration_since(since) < REFUSAL_AUDIT_EVERY {
                e.1 = n.saturating_add(1);
                return None;
            }
            *e = (now, 0);
            return Some(n);
        }
        if self.refusals.len() >= REFUSAL_MEMORY {
            self.refusals
                .retain(|_, (since, _)| now.duration_since(*since) < REFUSAL_AUDIT_EVERY);
            if self.refusals.len() >= REFUSAL_MEMORY {
                return None;
            }
        }
        self.refusals.insert(key, (now, 0));
        Some(0)
    }

    /// Waits until every connection, logging in or established, has ended (shutdown's
    /// drain). `false` when `limit` passed first.
    pub async fn drained(&self, limit: Duration) -> bool {
        let all = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        tokio::time::timeout(limit, async {
            let _s = self
                .sessions
                .acquire_many(all(self.limits.max_client_conn))
                .await;
            let _t = self
                .startup
                .acquire_many(all(self.limits.max_startup_conn))
                .await;
        })
        .await
        .is_ok()
    }

    /// Connections open now: established sessions and those logging in.
    pub fn open(&self) -> usize {
        (self.limits.max_client_conn - self.sessions.available_permits())
            + (self.limits.max_startup_conn - self.startup.available_permits())
    }
}

#[cfg(test)]
#[path = "admission_tests.rs"]
mod tests;
