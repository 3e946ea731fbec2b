//! Turning the raw runs into the result table (medians over rounds, ratios and added
//! latency against the direct connection) and the JSON file.

use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::bench::{Protocol, RunRecord, Security, TargetKind};
use crate::idle::IdleReport;

/// One row of the table: a target in a cell, over all rounds.
#[derive(Debug, Clone, Serialize)]
pub struct SummaryRow {
    /// Plaintext or TLS.
    pub security: Security,
    /// `-c`.
    pub clients: u32,
    /// `-M`.
    pub protocol: Protocol,
    /// What was measured.
    pub target: TargetKind,
    /// Successful runs.
    pub runs_ok: usize,
    /// Failed runs.
    pub runs_failed: usize,
    /// Median TPS of the successful runs.
    pub tps: Option<f64>,
    /// Median "latency average" (ms).
    pub latency_ms: Option<f64>,
    /// Median "initial connection time" (ms).
    pub connection_ms: Option<f64>,
    /// tps / direct tps of the same cell.
    pub tps_ratio: Option<f64>,
    /// (latency - direct latency) in microseconds per transaction.
    pub added_latency_us: Option<f64>,
    /// Median CPU time of the proxy process per transaction (µs).
    pub proxy_cpu_us_per_tx: Option<f64>,
    /// Median preemptions of the proxy's threads per transaction.
    pub proxy_preempted_per_tx: Option<f64>,
}

/// Median of the values (mean of the middle two for an even count); `None` when empty.
pub fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 0 {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    })
}

/// Groups the runs by (configuration, clients, protocol, target), in the order they ran.
pub fn summarize(records: &[RunRecord]) -> Vec<SummaryRow> {
    let mut keys: Vec<(Security, u32, Protocol, TargetKind)> = Vec::new();
    for r in records {
        let key = (r.security, r.clients, r.protocol, r.target);
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    let mut rows: Vec<SummaryRow> = keys
        .iter()
        .map(|&(security, clients, protocol, target)| {
            let runs: Vec<&RunRecord> = records
                .iter()
                .filter(|r| {
                    (r.security, r.clients, r.protocol, r.target)
                        == (security, clients, protocol, target)
                })
                .collect();
            let ok: Vec<_> = runs.iter().filter_map(|r| r.stats).collect();
            SummaryRow {
                security,
                clients,
                protocol,
                target,
                runs_ok: ok.len(),
                runs_failed: runs.len() - ok.len(),
                tps: median(ok.iter().map(|s| s.tps).collect()),
                latency_ms: median(ok.iter().map(|s| s.latency_ms).collect()),
                connection_ms: median(ok.iter().filter_map(|s| s.connection_ms).collect()),
                proxy_cpu_us_per_tx: median(
                    runs.iter().filter_map(|r| r.proxy_cpu_us_per_tx).collect(),
                ),
                proxy_preempted_per_tx: median(
                    runs.iter()
                        .filter_map(|r| r.proxy_preempted_per_tx)
                        .collect(),
                ),
                tps_ratio: None,
                added_latency_us: None,
            }
        })
        .collect();
    let direct: Vec<SummaryRow> = rows
        .iter()
        .filter(|r| r.target == TargetKind::Direct)
        .cloned()
        .collect();
    for row in &mut rows {
        let Some(d) = direct.iter().find(|d| {
            (d.security, d.clients, d.protocol) == (row.security, row.clients, row.protocol)
        }) else {
            continue;
        };
        row.tps_ratio = match (row.tps, d.tps) {
            (Some(t), Some(dt)) if dt > 0.0 => Some(t / dt),
            _ => None,
        };
        row.added_latency_us = match (row.latency_ms, d.latency_ms) {
            (Some(l), Some(dl)) => Some((l - dl) * 1000.0),
            _ => None,
        };
    }
    rows
}

fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.decimals$}"))
}

/// The result table as text. "CPU µs/tx" is the proxy process's own CPU time per
/// transaction (user + system, all threads); "preempt/tx" how often its threads were
/// preempted per transaction.
pub fn table(rows: &[SummaryRow]) -> String {
    let mut out = format!(
        "{:<6} {:>7} {:<8} {:<9} {:>10} {:>9} {:>9} {:>9} {:>10} {:>10}  {}\n",
        "config",
        "clients",
        "protocol",
        "target",
        "TPS",
        "lat ms",
        "vs direct",
        "added µs",
        "CPU µs/tx",
        "preempt/tx",
        "runs"
    );
    out.push_str(&format!("{}\n", "-".repeat(104)));
    let mut previous = None;
    for r in rows {
        let cell = (r.security, r.clients, r.protocol);
        if previous.is_some_and(|p| p != cell) {
            out.push('\n');
        }
        previous = Some(cell);
        let (ratio, added) = if r.target == TargetKind::Direct {
            ("1.000".to_owned(), "-".to_owned())
        } else {
            (
                opt(r.tps_ratio, 3),
                r.added_latency_us
                    .map_or_else(|| "-".to_owned(), |v| format!("{v:+.1}")),
            )
        };
        let runs = if r.runs_failed > 0 {
            format!("{} ok, {} FAILED", r.runs_ok, r.runs_failed)
        } else {
            format!("{} ok", r.runs_ok)
        };
        out.push_str(&format!(
            "{:<6} {:>7} {:<8} {:<9} {:>10} {:>9} {:>9} {:>9} {:>10} {:>10}  {}\n",
            r.security.name(),
            r.clients,
            r.protocol.name(),
            r.target.name(),
            opt(r.tps, 0),
            opt(r.latency_ms, 3),
            ratio,
            added,
            opt(r.proxy_cpu_us_per_tx, 1),
            opt(r.proxy_preempted_per_tx, 2),
            runs
        ));
    }
    out
}

/// One line per proxy: the range and median of its TPS ratios over all cells.
pub fn ratio_overview(rows: &[SummaryRow]) -> String {
    let mut out = String::new();
    for target in [TargetKind::Pgvigil, TargetKind::Pgbouncer] {
        let ratios: Vec<f64> = rows
            .iter()
            .filter(|r| r.target == target)
            .filter_map(|r| r.tps_ratio)
            .collect();
        if ratios.is_empty() {
            continue;
        }
        let min = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let max = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        out.push_str(&format!(
            "{:<9} TPS ratio to direct over {} cells: min {min:.3}, median {:.3}, max {max:.3}\n",
            target.name(),
            ratios.len(),
            median(ratios.clone()).unwrap_or(f64::NAN),
        ));
    }
    out
}

/// The idle-connection result as text.
pub fn idle_text(r: &IdleReport) -> String {
    let mut out = format!(
        "idle connections through pgvigil, {}: {} open (requested {})\n\
         \x20 pgvigil VmRSS before {} KiB, with {} idle {} KiB: +{} KiB total, {:.1} KiB per connection\n",
        r.legs.name(),
        r.opened,
        r.requested,
        r.rss_before_kib,
        r.opened,
        r.rss_idle_kib,
        r.rss_idle_kib.saturating_sub(r.rss_before_kib),
        r.per_connection_kib
    );
    let mut idle = vec![r.rss_idle_kib];
    idle.extend(&r.rss_idle_reopened_kib);
    for (i, closed) in r.rss_after_close_kib.iter().enumerate() {
        let open = idle
            .get(i)
            .map_or_else(|| "-".to_owned(), |k| k.to_string());
        out.push_str(&format!(
            "  cycle {}: {open} KiB with {} open, {closed} KiB after closing them\n",
            i + 1,
            r.opened
        ));
    }
    if let Some(peak) = r.rss_peak_kib {
        out.push_str(&format!("  peak (VmHWM) {peak} KiB\n"));
    }
    out.push_str(&format!("  logins took {:.1} s", r.connect_secs));
    if let Some(fds) = r.pgvigil_fds_idle {
        out.push_str(&format!("; pgvigil held {fds} file descriptors"));
    }
    if let Some(mib) = r.system_mem_used_mib {
        out.push_str(&format!(
            "; system memory in use rose by {mib} MiB (mostly PostgreSQL backends)"
        ));
    }
    out.push('\n');
    if let Some(why) = &r.limited_by {
        out.push_str(&format!("  limited: {why}\n"));
    }
    out
}

/// WARN and ERROR lines (and panics) of a pgvigil log (at most 5 listed, with the total).
pub fn log_problems(log: &str, who: &str) -> Vec<String> {
    let lines: Vec<String> = log
        .lines()
        .map(strip_ansi)
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR ") || l.contains("panicked"))
        .collect();
    let mut out: Vec<String> = lines
        .iter()
        .take(5)
        .map(|l| format!("{who} log: {l}"))
        .collect();
    if lines.len() > 5 {
        out.push(format!(
            "{who} log: {} more warning/error lines",
            lines.len() - 5
        ));
    }
    out
}

/// Removes terminal colour escapes (`ESC [ ... letter`).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Everything written to `--out`.
#[derive(Debug, Serialize)]
pub struct Results<'a> {
    /// Versions, settings, machine.
    pub meta: serde_json::Value,
    /// Every pgbench run.
    pub runs: &'a [RunRecord],
    /// The table.
    pub summary: &'a [SummaryRow],
    /// The memory phase, when run.
    pub idle: &'a [IdleReport],
    /// Problems noticed (failed runs, pgvigil warnings).
    pub problems: &'a [String],
}

/// Writes the results as pretty JSON.
pub fn write_json(path: &Path, results: &Results<'_>) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(results).context("cannot serialise the results")?;
    std::fs::write(path, text + "\n").with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::PgbenchStats;

    fn rec(target: TargetKind, tps: f64, lat: f64, round: u32) -> RunRecord {
        RunRecord {
            round,
            security: Security::Plain,
            clients: 1,
            protocol: Protocol::Simple,
            target,
            stats: Some(PgbenchStats {
                tps,
                latency_ms: lat,
                connection_ms: None,
                transactions: None,
                failed: Some(0),
            }),
            error: None,
            proxy_cpu_us_per_tx: None,
            proxy_preempted_per_tx: None,
        }
    }

    #[test]
    fn medians_and_ratios() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![1.0, 2.0]), Some(1.5));
        assert_eq!(median(vec![]), None);
        let rows = summarize(&[
            rec(TargetKind::Direct, 1000.0, 1.0, 1),
            rec(TargetKind::Pgvigil, 800.0, 1.25, 1),
            rec(TargetKind::Direct, 1000.0, 1.0, 2),
            rec(TargetKind::Pgvigil, 600.0, 1.75, 2),
        ]);
        assert_eq!(rows.len(), 2);
        let p = &rows[1];
        assert_eq!(p.tps, Some(700.0));
        assert!((p.tps_ratio.unwrap_or(0.0) - 0.7).abs() < 1e-9);
        assert!((p.added_latency_us.unwrap_or(0.0) - 500.0).abs() < 1e-6);
        assert!(table(&rows).contains("pgvigil"));
    }
}
