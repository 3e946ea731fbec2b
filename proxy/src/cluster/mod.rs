//! Replicas sharing detection state through Redis (`[cluster] redis_url`).
//!
//! Each replica appends its rule hits and blocks to one Redis stream (`PREFIX:events`) and
//! reads everyone else's from it, feeding them into its own counting windows and block
//! list: a brute force spread over replicas is counted once, and every replica refuses a
//! blocked address. Blocks are also kept as keys that expire with the block
//! (`PREFIX:block:ADDR`), which a starting replica loads, so blocks survive a restart. A
//! finding is delivered only by the replica that wins `SET NX` on the rule and group's
//! dedup key for the rule's cooldown: one episode, one alert.
//!
//! Redis is never in a login's way: the detector hands everything to a bounded queue and
//! goes on. While Redis is down the replica counts and blocks locally, delivers its own
//! findings, keeps its hits and blocks (bounded) and sends them when Redis is back;
//! `pgvigil_cluster_redis_up` is 0 and the log says so once per outage.

use crate::detect::{Detector, Finding, Replicas};
use metrics::{Counter, Gauge};
use redis::aio::MultiplexedConnection;
use redis::Value;
use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Operations waiting for the writer; past this, hits are dropped (and counted).
const QUEUE: usize = 65_536;
/// Operations kept while Redis is down, to send when it is back.
const PENDING: usize = 100_000;
/// Stream entries kept in Redis (approximately).
const STREAM_LEN: usize = 200_000;
/// How far back a starting replica reads the stream to rebuild windows.
const REPLAY: Duration = Duration::from_secs(3600);
/// Pause between attempts while Redis is down.
const RETRY: Duration = Duration::from_secs(1);

/// Errors of the cluster layer.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("[cluster] redis_url is not a valid Redis URL: {0}")]
    Url(String),
}

enum Op {
    Hit {
        rule: String,
        key: String,
        at: u64,
    },
    Block {
        addr: IpAddr,
        until: u64,
        rule: String,
    },
    Finding {
        rule: String,
        key: String,
        cooldown: u64,
        finding: Box<Finding>,
    },
}

/// The detector's link to the other replicas.
pub struct Link {
    tx: mpsc::Sender<Op>,
    out: tokio::sync::mpsc::UnboundedSender<Finding>,
    dropped: Counter,
}

impl Replicas for Link {
    fn hit(&self, rule_id: &str, key: &str, at: u64) {
        self.send(Op::Hit {
            rule: rule_id.to_string(),
            key: key.to_string(),
            at,
        });
    }

    fn block(&self, addr: IpAddr, until: u64, rule_id: &str) {
        self.send(Op::Block {
            addr,
            until,
            rule: rule_id.to_string(),
        });
    }

    fn finding(&self, rule_id: &str, key: &str, cooldown: u64, finding: Finding) {
        let op = Op::Finding {
            rule: rule_id.to_string(),
            key: key.to_string(),
            cooldown,
            finding: Box::new(finding),
        };
        // A full queue must not cost a finding: deliver it without the dedup.
        if let Err(
            mpsc::error::TrySendError::Full(Op::Finding { finding, .. })
            | mpsc::error::TrySendError::Closed(Op::Finding { finding, .. }),
        ) = self.tx.try_send(op)
        {
            let _ = self.out.send(*finding);
        }
    }
}

impl Link {
    fn send(&self, op: Op) {
        if self.tx.try_send(op).is_err() {
            self.dropped.increment(1);
        }
    }
}

/// Connects the detector to the other replicas: starts the writer and the reader tasks
/// (they connect, and reconnect, on their own; a Redis that is down at start is not an
/// error). Must run inside the runtime.
pub fn start(cfg: &crate::config::Cluster, detector: &Arc<Detector>) -> Result<(), ClusterError> {
    let client = redis::Client::open(cfg.redis_url.as_str())
        .map_err(|e| ClusterError::Url(e.to_string()))?;
    let (tx, rx) = mpsc::channel(QUEUE);
    let replica = format!("{:016x}", rand::random::<u64>());
    let keys = Keys {
        prefix: cfg.key_prefix.clone(),
    };
    let dropped = metrics::counter!("pgvigil_cluster_dropped_total");
    let state = Arc::new(State {
        up: metrics::gauge!("pgvigil_cluster_redis_up"),
        dropped: dropped.clone(),
        errors: metrics::counter!("pgvigil_cluster_redis_errors_total"),
        deduplicated: metrics::counter!("pgvigil_cluster_findings_deduplicated_total"),
        timeout: cfg.command_timeout,
    });
    let out = detector.findings_out();
    tokio::spawn(writer(
        client.clone(),
        rx,
        keys.clone(),
        replica.clone(),
        state.clone(),
        out.clone(),
    ));
    tokio::spawn(reader(client, keys, replica, state, detector.clone()));
    detector.share_with(Arc::new(Link { tx, out, dropped }));
    Ok(())
}

#[derive(Clone)]
struct Keys {
    prefix: String,
}

impl Keys {
    fn stream(&self) -> String {
        format!("{}events", self.prefix)
    }
    fn block_prefix(&self) -> String {
        format!("{}block:", self.prefix)
    }
    fn block(&self, addr: IpAddr) -> String {
        format!("{}{addr}", self.block_prefix())
    }
    fn dedup(&self, rule: &str, key: &str) -> String {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(key.as_bytes());
        let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        format!("{}dedup:{rule}:{hex}", self.prefix)
    }
}

struct State {
    up: Gauge,
    /// Hits and blocks dropped: the queue full, or the outage backlog past `PENDING`.
    dropped: Counter,
    errors: Counter,
    deduplicated: Counter,
    timeout: Duration,
}

impl State {
    /// Reports a failure once per outage (the caller passes whether it was up).
    fn down(&self, was_up: &mut bool, what: &str, e: &str) {
        self.errors.increment(1);
        self.up.set(0.0);
        if *was_up {
            tracing::warn!(error = %e, what, "Redis unreachable: counting locally, will catch up");
        }
        *was_up = false;
    }
}

async fn connect(client: &redis::Client, state: &State) -> Result<MultiplexedConnection, String> {
    tokio::time::timeout(state.timeout * 4, client.get_multiplexed_async_connection())
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| e.to_string())
}

async fn query<T: redis::FromRedisValue>(
    con: &mut MultiplexedConnection,
    cmd: &redis::Cmd,
    limit: Duration,
) -> Result<T, String> {
    tokio::time::timeout(limit, cmd.query_async::<T>(con))
        .await
        .map_err(|_| "command timed out".to_string())?
        .map_err(|e| e.to_string())
}

/// Sends local hits, blocks and findings; keeps them while Redis is down.
async fn writer(
    client: redis::Client,
    mut rx: mpsc::Receiver<Op>,
    keys: Keys,
    replica: String,
    state: Arc<State>,
    out: tokio::sync::mpsc::UnboundedSender<Finding>,
) {
    let mut con: Option<MultiplexedConnection> = None;
    let mut pending: VecDeque<Op> = VecDeque::new();
    let mut was_up = true;
    // While Redis is down: the next connect attempt (at most one per RETRY, whatever the
    // traffic, so an outage costs no more than one failed connect a second).
    let mut retry_at: Option<tokio::time::Instant> = None;
    loop {
        let next = match retry_at {
            None => match rx.recv().await {
                Some(op) => Some(op),
                None => return,
            },
            // Down: wake up for the next attempt even without new operations.
            Some(at) => tokio::time::timeout_at(at, rx.recv()).await.ok().flatten(),
        };
        if let Some(op) = next {
            match (retry_at.is_some(), op) {
                // A finding never waits for Redis to come back.
                (true, Op::Finding { finding, .. }) => {
                    let _ = out.send(*finding);
                }
                (_, op) => {
                    pending.push_back(op);
                    if pending.len() > PENDING {
                        pending.pop_front();
                        state.dropped.increment(1);
                    }
                }
            }
        }
        if retry_at.is_some_and(|at| tokio::time::Instant::now() < at) {
            continue;
        }
        if con.is_none() {
            match connect(&client, &state).await {
                Ok(c) => con = Some(c),
                Err(e) => {
                    state.down(&mut was_up, "connect", &e);
                    shed(&mut pending, &out);
                    retry_at = Some(tokio::time::Instant::now() + RETRY);
                    continue;
                }
            }
        }
        let Some(c) = con.as_mut() else { continue };
        while let Some(op) = pending.pop_front() {
            if let Err((op, e)) = apply(c, op, &keys, &replica, &state, &out).await {
                state.down(&mut was_up, "write", &e);
                pending.push_front(op);
                con = None;
                break;
            }
        }
        if con.is_some() {
            if !was_up {
                tracing::info!("Redis reachable again: shared state caught up");
            }
            was_up = true;
            retry_at = None;
            state.up.set(1.0);
        } else {
            shed(&mut pending, &out);
            retry_at = Some(tokio::time::Instant::now() + RETRY);
        }
    }
}

/// While Redis is down: findings go out at once (a finding never waits on Redis), and the
/// backlog of hits and blocks is bounded (oldest dropped).
fn shed(pending: &mut VecDeque<Op>, out: &tokio::sync::mpsc::UnboundedSender<Finding>) {
    let mut kept = VecDeque::with_capacity(pending.len());
    for op in pending.drain(..) {
        match op {
            Op::Finding { finding, .. } => {
                let _ = out.send(*finding);
            }
            other => kept.push_back(other),
        }
    }
    *pending = kept;
}

/// Sends one operation; on failure hands it back for a later attempt.
async fn apply(
    con: &mut MultiplexedConnection,
    op: Op,
    keys: &Keys,
    replica: &str,
    state: &State,
    out: &tokio::sync::mpsc::UnboundedSender<Finding>,
) -> Result<(), (Op, String)> {
    let result = send(con, &op, keys, replica, state).await;
    match (result, op) {
        (Ok(true), Op::Finding { finding, .. }) => {
            let _ = out.send(*finding);
            Ok(())
        }
        (Ok(_), _) => Ok(()),
        (Err(e), op) => Err((op, e)),
    }
}

/// One operation's commands. `Ok(true)` for a finding this replica is first to report.
async fn send(
    con: &mut MultiplexedConnection,
    op: &Op,
    keys: &Keys,
    replica: &str,
    state: &State,
) -> Result<bool, String> {
    let t = state.timeout;
    match op {
        Op::Hit { rule, key, at } => {
            let cmd = announce(keys, replica, "hit", rule, key, *at);
            query::<Value>(con, &cmd, t).await.map(|_| false)
        }
        Op::Block { addr, until, rule } => {
            let mut set = redis::cmd("SET");
            set.arg(keys.block(*addr))
                .arg(format!("{until}|{rule}"))
                .arg("PXAT")
                .arg(*until);
            query::<Value>(con, &set, t).await?;
            let cmd = announce(keys, replica, "block", rule, &addr.to_string(), *until);
            query::<Value>(con, &cmd, t).await.map(|_| false)
        }
        Op::Finding {
            rule,
            key,
            cooldown,
            ..
        } => {
            let mut cmd = redis::cmd("SET");
            cmd.arg(keys.dedup(rule, key))
                .arg(replica)
                .arg("NX")
                .arg("PX")
                .arg((*cooldown).max(1));
            let won: Value = query(con, &cmd, t).await?;
            if matches!(won, Value::Nil) {
                state.deduplicated.increment(1);
                tracing::info!(rule_id = %rule, "finding already reported by another replica");
                return Ok(false);
            }
            Ok(true)
        }
    }
}

/// The stream entry that tells the other replicas of a hit or a block (`kind`), capped
/// at about [`STREAM_LEN`] entries.
fn announce(keys: &Keys, replica: &str, kind: &str, rule: &str, key: &str, at: u64) -> redis::Cmd {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(keys.stream())
        .arg("MAXLEN")
        .arg("~")
        .arg(STREAM_LEN)
        .arg("*")
        .arg("r")
        .arg(replica)
        .arg("k")
        .arg(kind)
        .arg("rule")
        .arg(rule)
        .arg("key")
        .arg(key)
        .arg("at")
        .arg(at);
    cmd
}

/// Reads the other replicas' hits and blocks (and, on start, the blocks Redis holds).
async fn reader(
    client: redis::Client,
    keys: Keys,
    replica: String,
    state: Arc<State>,
    detector: Arc<Detector>,
) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let start = now.saturating_sub(REPLAY.as_millis() as u64);
    let mut last_id = format!("{start}-0");
    let mut loaded_blocks = false;
    loop {
        let mut con = match connect(&client, &state).await {
            Ok(c) => c,
            Err(_) => {
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        if !loaded_blocks {
            match load_blocks(&mut con, &keys, &state, &detector).await {
                Ok(n) => {
                    loaded_blocks = true;
                    if n > 0 {
                        tracing::info!(blocks = n, "blocks loaded from Redis");
                    }
                }
                Err(_) => {
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            }
        }
        loop {
            let mut cmd = redis::cmd("XREAD");
            cmd.arg("COUNT")
                .arg(1000)
                .arg("BLOCK")
                .arg(1000)
                .arg("STREAMS")
                .arg(keys.stream())
                .arg(&last_id);
            let reply: Value = match query(&mut con, &cmd, Duration::from_secs(5)).await {
                Ok(v) => v,
                Err(_) => break,
            };
            for (id, fields) in entries(reply) {
                last_id = id;
                let get = |name: &str| {
                    fields
                        .iter()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.as_str())
                };
                if get("r") == Some(replica.as_str()) {
                    continue;
                }
                let (Some(kind), Some(rule), Some(key), Some(at)) = (
                    get("k"),
                    get("rule"),
                    get("key"),
                    get("at").and_then(|a| a.parse::<u64>().ok()),
                ) else {
                    continue;
                };
                match kind {
                    "hit" => detector.remote_hit(rule, key, at),
                    "block" => {
                        if let Ok(addr) = key.parse::<IpAddr>() {
                            detector.remote_block(addr, at, rule);
                        }
                    }
                    _ => {}
                }
            }
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// Loads every block Redis holds (they expire with the block).
async fn load_blocks(
    con: &mut MultiplexedConnection,
    keys: &Keys,
    state: &State,
    detector: &Detector,
) -> Result<usize, String> {
    let pattern = format!("{}*", keys.block_prefix());
    let mut cursor: u64 = 0;
    let mut n = 0;
    loop {
        let mut scan = redis::cmd("SCAN");
        scan.arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000);
        let (next, found): (u64, Vec<String>) = query(con, &scan, state.timeout).await?;
        for k in found {
            let value: Option<String> =
                query(con, redis::cmd("GET").arg(&k), state.timeout).await?;
            let addr = k
                .strip_prefix(&keys.block_prefix())
                .and_then(|a| a.parse().ok());
            let parsed = value.as_deref().and_then(|v| v.split_once('|'));
            if let (Some(addr), Some((until, rule))) = (addr, parsed) {
                if let Ok(until) = until.parse::<u64>() {
                    detector.remote_block(addr, until, rule);
                    n += 1;
                }
            }
        }
        if next == 0 {
            return Ok(n);
        }
        cursor = next;
    }
}

/// The entries of an XREAD reply, as (id, [(field, value)]); anything malformed is skipped.
fn entries(reply: Value) -> Vec<(String, Vec<(String, String)>)> {
    let streams = match reply {
        Value::Array(a) => a,
        Value::Map(m) => m
            .into_iter()
            .map(|(k, v)| Value::Array(vec![k, v]))
            .collect(),
        _ => return Vec::new(),
    };
    let mut out = Vec::new();
    for stream in streams {
        let Value::Array(parts) = stream else {
            continue;
        };
        let Some(Value::Array(items)) = parts.into_iter().nth(1) else {
            continue;
        };
        for item in items {
            let Value::Array(pair) = item else { continue };
            let mut pair = pair.into_iter();
            let (Some(id), Some(Value::Array(kv))) = (pair.next(), pair.next()) else {
                continue;
            };
            let Some(id) = text(&id) else { continue };
            let mut fields = Vec::with_capacity(kv.len() / 2);
            let mut kv = kv.iter();
            while let (Some(k), Some(v)) = (kv.next(), kv.next()) {
                if let (Some(k), Some(v)) = (text(k), text(v)) {
                    fields.push((k, v));
                }
            }
            out.push((id, fields));
        }
    }
    out
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn xread_replies_parse_and_malformed_parts_are_skipped() {
        let entry = |id: &str, kv: Vec<Value>| Value::Array(vec![bulk(id), Value::Array(kv)]);
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("pgvigil:events"),
            Value::Array(vec![
                entry(
                    "1-0",
                    vec![bulk("k"), bulk("hit"), bulk("rule"), bulk("r1")],
                ),
                // Not an entry, an entry without fields, an odd field list, a number id.
                Value::Int(7),
                Value::Array(vec![bulk("2-0")]),
                entry("3-0", vec![bulk("k"), bulk("block"), bulk("dangling")]),
                Value::Array(vec![Value::Int(4), Value::Array(vec![])]),
            ]),
        ])]);
        let got = entries(reply);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, "1-0");
        assert_eq!(
            got[0].1,
            vec![
                ("k".to_string(), "hit".to_string()),
                ("rule".to_string(), "r1".to_string())
            ]
        );
        assert_eq!(got[1].1, vec![("k".to_string(), "block".to_string())]);
        assert!(entries(Value::Nil).is_empty());
        assert!(entries(Value::Array(vec![Value::Nil, bulk("x")])).is_empty());
    }

    #[test]
    fn dedup_keys_name_the_rule_and_hide_the_group() {
        let k = Keys {
            prefix: "p:".into(),
        };
        let a = k.dedup("failed-logins", "10.0.0.1");
        assert!(a.starts_with("p:dedup:failed-logins:") && !a.contains("10.0.0.1"));
        assert_ne!(a, k.dedup("failed-logins", "10.0.0.2"));
        assert_eq!(k.block("10.0.0.1".parse().unwrap()), "p:block:10.0.0.1");
    }
}
