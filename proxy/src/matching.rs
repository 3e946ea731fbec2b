//! Matching shared by configuration, detection, enforcement and access policies: globs
//! over names and client addresses given as CIDR ranges or globs.
//!
//! It depends on nothing else in the crate, so that config (which describes), detect and
//! enforce (which decide) can all use it without importing one another.

use std::net::IpAddr;

/// Glob match with `*` (any run of characters) and `?` (one character); everything else is
/// literal. Iterative with one backtrack point, so linear-ish and never recursive.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    // Rules test every statement event against their patterns, and most patterns start
    // with a literal character: a different first byte settles it before any scan (the
    // first characters must be equal, so must their first bytes).
    if let Some(&first) = pattern.as_bytes().first() {
        if first != b'*' && first != b'?' && name.as_bytes().first() != Some(&first) {
            return false;
        }
    }
    // Fast paths for the common shapes: a literal, and a literal followed by one `*`.
    match pattern.bytes().position(|b| b == b'*' || b == b'?') {
        None => return pattern == name,
        Some(i) if i + 1 == pattern.len() && pattern.ends_with('*') => {
            return name.starts_with(&pattern[..i]);
        }
        _ => {}
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == '?' || n.get(ni) == Some(&c) => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi.min(p.len())..].iter().all(|&c| c == '*')
}

/// Any of `patterns` matches `name`.
pub fn any_glob(patterns: &[String], name: &str) -> bool {
    patterns.iter().any(|p| glob_match(p, name))
}

/// Whether `pattern` reads as a CIDR range or a bare address (rather than a glob).
pub fn parse_net(pattern: &str) -> Option<ipnet::IpNet> {
    if let Ok(net) = pattern.parse::<ipnet::IpNet>() {
        return Some(net);
    }
    pattern.parse::<IpAddr>().ok().map(ipnet::IpNet::from)
}

/// A client address pattern: a CIDR range (`10.0.0.0/8`), an address, or a glob over the
/// address as text (`10.1.*`). A CIDR range matches an IPv4 client seen through an
/// IPv4-mapped IPv6 address too.
pub fn addr_matches(pattern: &str, addr: IpAddr) -> bool {
    match parse_net(pattern) {
        Some(net) => {
            net.contains(&addr)
                || match addr {
                    IpAddr::V6(v6) => v6
                        .to_ipv4_mapped()
                        .is_some_and(|v4| net.contains(&IpAddr::V4(v4))),
                    IpAddr::V4(_) => false,
                }
        }
        None => glob_match(pattern, &addr.to_string()),
    }
}

/// Any of `patterns` matches `addr`.
pub fn any_addr(patterns: &[String], addr: IpAddr) -> bool {
    patterns.iter().any(|p| addr_matches(p, addr))
}

/// A pattern that is neither a valid CIDR range nor usable as a glob over an address: it
/// has a `/` (so it was meant as a range) but does not parse. `None` when fine.
pub fn addr_pattern_problem(pattern: &str) -> Option<String> {
    if pattern.contains('/') && parse_net(pattern).is_none() {
        return Some(format!(
            "{pattern:?} is not a valid CIDR range (e.g. \"10.0.0.0/8\" or \"fd00::/8\")"
        ));
    }
    if pattern.is_empty() {
        return Some("an empty pattern matches no address".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("svc_*", "svc_billing"));
        assert!(glob_match("svc_*", "svc_"));
        assert!(!glob_match("svc_*", "alice"));
        assert!(glob_match("replicator", "replicator"));
        assert!(!glob_match("replicator", "replicator2"));
        assert!(glob_match("*_bot", "deploy_bot"));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b*c", "axxbyy"));
        assert!(glob_match("app?", "app1"));
        assert!(!glob_match("app?", "app"));
    }

    #[test]
    fn addresses() {
        let a: IpAddr = "10.1.2.3".parse().unwrap();
        assert!(addr_matches("10.0.0.0/8", a));
        assert!(!addr_matches("10.2.0.0/16", a));
        assert!(addr_matches("10.1.*", a));
        assert!(addr_matches("10.1.2.3", a));
        assert!(!addr_matches("10.1.2.30", a));
        // A CIDR never matches as text: "10.1.2.3/32" is not a prefix glob.
        assert!(!addr_matches("10.1.2.30/32", a));
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert!(addr_matches("10.0.0.0/8", mapped));
        let v6: IpAddr = "fd00::1".parse().unwrap();
        assert!(addr_matches("fd00::/8", v6));
        assert!(!addr_matches("10.0.0.0/8", v6));
        assert!(addr_pattern_problem("10.0.0.0/33").is_some());
        assert!(addr_pattern_problem("10.0.0.0/8").is_none());
        assert!(addr_pattern_problem("10.*").is_none());
    }
}
