//! Per-group sliding windows for one rule, bounded in memory.
//!
//! Each group (one client address, one user, ...) keeps the times of its last
//! `threshold + 1` matching events, which is all "more than `threshold` within `window`"
//! needs, plus when it last fired and its episode's dedup key. Groups whose window and
//! cooldown have both passed are forgotten (lazily, and by [`Groups::sweep`]); when a rule
//! has `max_groups` groups, the least recently seen eighth is evicted and counted.

use dashmap::DashMap;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Milliseconds since the Unix epoch: the detector's clock (tests pass their own).
pub type Millis = u64;

/// One group's state.
#[derive(Debug)]
struct Group {
    /// Times of the most recent matching events, oldest first, at most `threshold + 1`.
    hits: VecDeque<Millis>,
    last_seen: Millis,
    last_fired: Option<Millis>,
    /// Matching events since the last finding that the cooldown kept quiet.
    suppressed: u64,
    /// Set when the group first fires; kept while the group lives.
    episode: Option<String>,
}

/// What [`Groups::hit`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Below the threshold, or inside the cooldown.
    Quiet,
    /// Fire a finding.
    Fire {
        count: u64,
        first_seen: Millis,
        last_seen: Millis,
        /// Matching events the cooldown suppressed since the previous finding.
        suppressed: u64,
        /// The episode's dedup key, made when the group first fired (under the group's
        /// lock, so two sessions firing at once share it).
        episode: String,
    },
}

/// The timing a rule counts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub threshold: u32,
    pub window: Millis,
    pub cooldown: Millis,
}

impl Timing {
    /// How long a group must be idle before it is forgotten (ending its episode).
    fn lifetime(&self) -> Millis {
        self.window.max(self.cooldown)
    }
}

/// All groups of one rule.
#[derive(Debug)]
pub struct Groups {
    map: DashMap<String, Group>,
    max: usize,
    evicting: Mutex<()>,
    evicted: AtomicU64,
    evictions: metrics::Counter,
    rule_id: String,
}

impl Groups {
    /// Groups of rule `rule_id`, at most about `max` of them.
    pub fn new(max: usize, rule_id: &str) -> Groups {
        Groups {
            rule_id: rule_id.to_string(),
            evictions: metrics::counter!(
                "pgvigil_detect_evictions_total",
                "rule_id" => rule_id.to_string()
            ),
            map: DashMap::new(),
            max: max.max(8),
            evicting: Mutex::new(()),
            evicted: AtomicU64::new(0),
        }
    }

    /// Groups currently held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Groups evicted for room so far.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    /// Counts one matching event of `key` at `now`.
    pub fn hit(&self, key: &str, now: Millis, t: Timing) -> Verdict {
        // A known group is looked up without copying the key.
        if let Some(mut g) = self.map.get_mut(key) {
            return count(&mut g, &self.rule_id, key, now, t);
        }
        if self.map.len() >= self.max {
            self.make_room(now, t);
        }
        let mut g = self.map.entry(key.to_string()).or_insert_with(|| Group {
            hits: VecDeque::new(),
            last_seen: now,
            last_fired: None,
            suppressed: 0,
            episode: None,
        });
        count(&mut g, &self.rule_id, key, now, t)
    }

    /// Forgets groups idle past their lifetime. Returns how many went.
    pub fn sweep(&self, now: Millis, t: Timing) -> usize {
        let before = self.map.len();
        self.map
            .retain(|_, g| now.saturating_sub(g.last_seen) <= t.lifetime());
        before.saturating_sub(self.map.len())
    }

    /// At capacity: forget the idle, and if that frees less than an eighth, evict the
    /// least recently seen eighth. One thread evicts at a time; others go on (the map
    /// may briefly exceed `max` by the number of concurrent inserts).
    fn make_room(&self, now: Millis, t: Timing) {
        let Ok(_guard) = self.evicting.try_lock() else {
            return;
        };
        let target = self.max - self.max / 8;
        self.sweep(now, t);
        if self.map.len() <= target {
            return;
        }
        let mut seen: Vec<Millis> = self.map.iter().map(|g| g.last_seen).collect();
        let excess = seen.len().saturating_sub(target);
        if excess == 0 {
            return;
        }
        let (_, cutoff, _) = seen.select_nth_unstable(excess - 1);
        let cutoff = *cutoff;
        let mut removed = 0u64;
        self.map.retain(|_, g| {
            if removed < excess as u64 && g.last_seen <= cutoff {
                removed += 1;
                false
            } else {
                true
            }
        });
        self.evicted.fetch_add(removed, Ordering::Relaxed);
        self.evictions.increment(removed);
    }
}

/// Counts one event in group `g`.
fn count(g: &mut Group, rule_id: &str, key: &str, now: Millis, t: Timing) -> Verdict {
    // A group idle past its lifetime starts over, with a new episode.
    if now.saturating_sub(g.last_seen) > t.lifetime() {
        g.hits.clear();
        g.last_fired = None;
        g.suppressed = 0;
        g.episode = None;
    }
    g.last_seen = now;
    g.hits.push_back(now);
    while g.hits.len() > t.threshold as usize + 1 {
        g.hits.pop_front();
    }
    while g
        .hits
        .front()
        .is_some_and(|&first| now.saturating_sub(first) > t.window && t.threshold > 0)
    {
        g.hits.pop_front();
    }
    let count = g.hits.len() as u64;
    if count <= u64::from(t.threshold) {
        return Verdict::Quiet;
    }
    if g.last_fired
        .is_some_and(|f| now.saturating_sub(f) < t.cooldown)
    {
        g.suppressed += 1;
        return Verdict::Quiet;
    }
    g.last_fired = Some(now);
    let suppressed = std::mem::take(&mut g.suppressed);
    Verdict::Fire {
        count,
        first_seen: g.hits.front().copied().unwrap_or(now),
        last_seen: now,
        suppressed,
        episode: g
            .episode
            .get_or_insert_with(|| episode_key(rule_id, key, now))
            .clone(),
    }
}

/// `<rule id>:<32 hex digits>`, from the rule, the group and when the episode began.
pub fn episode_key(rule_id: &str, group: &str, started: Millis) -> String {
    use sha2::{Digest, Sha256};
    use std::fmt::Write as _;
    let mut h = Sha256::new();
    h.update(rule_id.as_bytes());
    h.update([0]);
    h.update(group.as_bytes());
    h.update([0]);
    h.update(started.to_be_bytes());
    let digest = h.finalize();
    let mut out = String::with_capacity(rule_id.len() + 33);
    out.push_str(rule_id);
    out.push(':');
    for b in &digest[..16] {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timing = Timing {
        threshold: 5,
        window: 600_000,
        cooldown: 600_000,
    };

    fn fires(v: &Verdict) -> bool {
        matches!(v, Verdict::Fire { .. })
    }

    #[test]
    fn more_than_threshold_in_window_fires_once_per_cooldown() {
        let g = Groups::new(100, "t");
        for i in 0..5 {
            assert!(!fires(&g.hit("a", 1000 + i, T)), "hit {i}");
        }
        let v = g.hit("a", 2000, T);
        let Verdict::Fire {
            count,
            first_seen,
            episode,
            ..
        } = v
        else {
            panic!("sixth hit must fire");
        };
        assert_eq!((count, first_seen), (6, 1000));
        assert_eq!(episode, episode_key("t", "a", 2000));
        // Within the cooldown: quiet, counted as suppressed.
        assert!(!fires(&g.hit("a", 3000, T)));
        // After the cooldown, busy again before the group went idle: fires again, in
        // the same episode, once more than 5 fall in the window.
        let mut fired = None;
        for i in 0..6 {
            if let v @ Verdict::Fire { .. } = g.hit("a", 2000 + 600_000 + i, T) {
                fired = Some((i, v));
                break;
            }
        }
        let Some((
            4,
            Verdict::Fire {
                suppressed,
                episode,
                ..
            },
        )) = fired
        else {
            panic!(
                "must fire on the 5th hit after the cooldown (3000 still in the window): {fired:?}"
            );
        };
        assert_eq!(suppressed, 1);
        assert_eq!(episode, episode_key("t", "a", 2000), "same episode");
        // Other groups are independent.
        assert!(!fires(&g.hit("b", 3000, T)));
    }

    #[test]
    fn events_outside_the_window_do_not_count() {
        let g = Groups::new(100, "t");
        for i in 0..5 {
            g.hit("a", i * 200_000, T);
        }
        // Hits at 0, 200k, 400k, 600k, 800k, 1000k: never six within 10 minutes.
        assert!(!fires(&g.hit("a", 1_000_000, T)));
    }

    #[test]
    fn idle_group_starts_a_new_episode() {
        let g = Groups::new(100, "t");
        let t = Timing {
            threshold: 0,
            window: 1000,
            cooldown: 1000,
        };
        assert!(fires(&g.hit("a", 0, t)));
        let Verdict::Fire { episode, .. } = g.hit("a", 5000, t) else {
            panic!()
        };
        assert_eq!(episode, episode_key("t", "a", 5000), "a new episode");
    }

    #[test]
    fn a_million_distinct_groups_stay_bounded() {
        let g = Groups::new(10_000, "t");
        for i in 0..1_000_000u64 {
            g.hit(&i.to_string(), 1000 + i / 100, T);
            assert!(g.len() <= 10_000 + 1);
        }
        assert!(g.evicted() >= 990_000, "evicted {}", g.evicted());
        // The most recent groups survive.
        assert!(g.map.contains_key("999999"));
    }
}
