//! Client addresses refused by `action = "block"` rules, until their block expires.
//!
//! Held in memory beside the rule set, so a reload keeps every block; a restart forgets
//! them (the findings that caused them are in the outbox and the sinks).

use super::window::Millis;
use dashmap::DashMap;
use std::net::IpAddr;

/// One blocked address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub until: Millis,
    pub rule_id: String,
}

/// The block list.
#[derive(Debug, Default)]
pub struct Blocklist {
    map: DashMap<IpAddr, Block>,
}

impl Blocklist {
    /// Blocks `addr` until `until`, or longer if it is already blocked longer.
    pub fn block(&self, addr: IpAddr, until: Millis, rule_id: &str) {
        let mut e = self.map.entry(addr).or_insert_with(|| Block {
            until,
            rule_id: rule_id.to_string(),
        });
        if e.until < until {
            e.until = until;
            e.rule_id = rule_id.to_string();
        }
    }

    /// The block on `addr` at `now`, if any (an expired one is removed).
    pub fn check(&self, addr: IpAddr, now: Millis) -> Option<Block> {
        if self.map.is_empty() {
            return None;
        }
        let found = self.map.get(&addr).map(|b| b.clone())?;
        if found.until > now {
            return Some(found);
        }
        self.map.remove_if(&addr, |_, b| b.until <= now);
        None
    }

    /// Drops expired blocks; returns how many remain.
    pub fn sweep(&self, now: Millis) -> usize {
        self.map.retain(|_, b| b.until > now);
        self.map.len()
    }

    /// Lifts the block on `addr`; false when it was not blocked.
    pub fn unblock(&self, addr: IpAddr) -> bool {
        self.map.remove(&addr).is_some()
    }

    /// Every block in force at `now`, soonest to expire first.
    pub fn list(&self, now: Millis) -> Vec<(IpAddr, Block)> {
        let mut v: Vec<(IpAddr, Block)> = self
            .map
            .iter()
            .filter(|e| e.value().until > now)
            .map(|e| (*e.key(), e.value().clone()))
            .collect();
        v.sort_by(|a, b| a.1.until.cmp(&b.1.until).then(a.0.cmp(&b.0)));
        v
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// Whether `addr` is a loopback address (127.0.0.0/8, ::1, and IPv4-mapped loopback).
pub fn is_loopback(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_expire_and_extend() {
        let b = Blocklist::default();
        let a: IpAddr = "203.0.113.7".parse().unwrap();
        b.block(a, 1000, "r");
        assert_eq!(b.check(a, 999).map(|x| x.until), Some(1000));
        b.block(a, 500, "r");
        assert_eq!(b.check(a, 999).map(|x| x.until), Some(1000));
        b.block(a, 2000, "s");
        assert_eq!(b.check(a, 1500).map(|x| x.rule_id), Some("s".to_string()));
        assert_eq!(b.check(a, 2000), None);
        assert!(b.is_empty());
        b.block(a, 5000, "admin");
        assert_eq!(b.list(0).len(), 1);
        assert!(b.unblock(a));
        assert!(!b.unblock(a));
        assert!(b.list(0).is_empty());
        assert!(is_loopback("127.0.0.2".parse().unwrap()));
        assert!(is_loopback("::1".parse().unwrap()));
        assert!(is_loopback("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!is_loopback("10.0.0.1".parse().unwrap()));
    }
}
