//! `[auth] cert_map`: which certificate subjects may log in as which users, for
//! `[listen.tls] mode = "verify-ca"` (verify-full needs no map: CN = user).
//!
//! A key is a subject DN in RFC 4514 order (`CN=alice,O=Example`), or, starting with `/`,
//! a regular expression over that DN whose first group may be used in the value as `\1`
//! (pg_ident.conf's convention). A login is allowed when some entry maps the client's DN to
//! the requested user.

use regex::Regex;
use rustls_pki_types::CertificateDer;
use std::collections::{BTreeMap, HashMap};

/// The map, compiled.
#[derive(Debug, Default)]
pub struct CertMap {
    exact: HashMap<String, Vec<String>>,
    patterns: Vec<(Regex, String)>,
}

impl CertMap {
    /// Compiles the entries; errors name the bad key.
    pub fn new(entries: &BTreeMap<String, String>) -> Result<CertMap, String> {
        let mut map = CertMap::default();
        for (key, user) in entries {
            match key.strip_prefix('/') {
                Some(pattern) => {
                    let re = Regex::new(pattern)
                        .map_err(|e| format!("invalid regular expression {key:?}: {e}"))?;
                    map.patterns.push((re, user.clone()));
                }
                None => map
                    .exact
                    .entry(normalize(key))
                    .or_default()
                    .push(user.clone()),
            }
        }
        Ok(map)
    }

    /// Whether the subject `dn` may log in as `user`.
    pub fn allows(&self, dn: &str, user: &str) -> bool {
        if self
            .exact
            .get(&normalize(dn))
            .is_some_and(|users| users.iter().any(|u| u == user))
        {
            return true;
        }
        self.patterns.iter().any(|(re, target)| {
            let Some(caps) = re.captures(dn) else {
                return false;
            };
            let mapped = match caps.get(1) {
                Some(g) => target.replace("\\1", g.as_str()),
                None => target.clone(),
            };
            mapped == user
        })
    }
}

/// `CN=a, O=b` and `CN=a,O=b` are the same DN.
fn normalize(dn: &str) -> String {
    dn.split(',').map(str::trim).collect::<Vec<_>>().join(",")
}

/// The certificate's subject in RFC 4514 order (most specific first, like PostgreSQL's
/// `clientname=DN`), with the usual short attribute names.
pub fn subject_dn(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let mut parts = Vec::new();
    for rdn in parsed.subject().iter_rdn() {
        for attr in rdn.iter() {
            let oid = attr.attr_type().to_id_string();
            let name = match oid.as_str() {
                "2.5.4.3" => "CN",
                "2.5.4.6" => "C",
                "2.5.4.7" => "L",
                "2.5.4.8" => "ST",
                "2.5.4.10" => "O",
                "2.5.4.11" => "OU",
                "0.9.2342.19200300.100.1.25" => "DC",
                "0.9.2342.19200300.100.1.1" => "UID",
                "1.2.840.113549.1.9.1" => "emailAddress",
                _ => "",
            };
            let value = attr.as_str().ok()?;
            let name = if name.is_empty() {
                oid.clone()
            } else {
                name.to_string()
            };
            parts.push(format!("{name}={}", value.replace(',', "\\,")));
        }
    }
    parts.reverse();
    Some(parts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_regex_entries() {
        let mut e = BTreeMap::new();
        e.insert("CN=alice,O=Example".to_string(), "alice".to_string());
        e.insert("CN=ops, O=Example".to_string(), "admin".to_string());
        e.insert(
            "/^CN=([a-z]+)-ro,O=Example$".to_string(),
            "\\1_readonly".to_string(),
        );
        let m = CertMap::new(&e).unwrap();
        assert!(m.allows("CN=alice,O=Example", "alice"));
        assert!(m.allows("CN=alice, O=Example", "alice"));
        assert!(
            !m.allows("CN=alice,O=Example", "admin"),
            "one user's certificate for another"
        );
        assert!(m.allows("CN=ops,O=Example", "admin"));
        assert!(m.allows("CN=bob-ro,O=Example", "bob_readonly"));
        assert!(!m.allows("CN=bob-ro,O=Example", "bob"));
        assert!(!m.allows("CN=bob-ro,O=Evil,O=Example", "bob_readonly"));
        assert!(!m.allows("CN=mallory,O=Example", "mallory"));
    }

    #[test]
    fn a_bad_pattern_is_reported() {
        let mut e = BTreeMap::new();
        e.insert("/(".to_string(), "x".to_string());
        assert!(CertMap::new(&e)
            .unwrap_err()
            .contains("invalid regular expression"));
    }
}
