//! The auth file, in PgBouncer's `userlist.txt` format: one `"user" "secret"` per line,
//! a `"` inside a field doubled; other lines (comments) ignored. Secrets are SCRAM or md5
//! verifiers; a cleartext password is refused (pgvigil must never hold passwords).

use super::md5;
use super::scram::Verifier;
use std::collections::HashMap;

/// A user's stored secret.
#[derive(Debug, Clone)]
pub enum StoredSecret {
    /// `SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>`.
    Scram(Verifier),
    /// `md5` + 32 hex digits.
    Md5(String),
}

impl StoredSecret {
    /// Parses a verifier as PostgreSQL stores it in `pg_authid.rolpassword`.
    pub fn parse(text: &str) -> Result<StoredSecret, String> {
        if text.starts_with("SCRAM-SHA-256$") {
            return Verifier::parse(text)
                .map(StoredSecret::Scram)
                .map_err(|e| e.to_string());
        }
        if md5::is_verifier(text) {
            return Ok(StoredSecret::Md5(text.to_string()));
        }
        Err(
            "not a SCRAM-SHA-256 or md5 verifier (cleartext passwords are refused: store the \
             verifier from pg_authid.rolpassword)"
                .into(),
        )
    }
}

/// Users and their secrets from an auth file.
#[derive(Debug, Default, Clone)]
pub struct UserList {
    users: HashMap<String, StoredSecret>,
}

impl UserList {
    /// Parses the file's text; every bad line is reported with its 1-based number (the
    /// secret itself is never quoted in a message).
    pub fn parse(text: &str) -> Result<UserList, Vec<(usize, String)>> {
        let mut users = HashMap::new();
        let mut errors = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if !line.starts_with('"') {
                continue;
            }
            let parsed = quoted(line).and_then(|(user, rest)| {
                let (secret, rest) = quoted(rest.trim_start())?;
                Some((user, secret, rest))
            });
            let Some((user, secret, _)) = parsed else {
                errors.push((i + 1, "expected \"user\" \"secret\"".to_string()));
                continue;
            };
            match StoredSecret::parse(&secret) {
                Ok(s) => {
                    users.insert(user, s);
                }
                Err(e) => errors.push((i + 1, format!("user \"{user}\": {e}"))),
            }
        }
        if errors.is_empty() {
            Ok(UserList { users })
        } else {
            Err(errors)
        }
    }

    /// The secret stored for `user`.
    pub fn get(&self, user: &str) -> Option<&StoredSecret> {
        self.users.get(user)
    }

    /// How many users the file names.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether the file names no user.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

/// Reads one `"..."` field (with `""` for a quote) from the start of `s`; returns it and
/// the rest.
fn quoted(s: &str) -> Option<(String, &str)> {
    let mut rest = s.strip_prefix('"')?;
    let mut out = String::new();
    loop {
        let end = rest.find('"')?;
        out.push_str(&rest[..end]);
        rest = &rest[end + 1..];
        match rest.strip_prefix('"') {
            Some(r) => {
                out.push('"');
                rest = r;
            }
            None => return Some((out, rest)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgbouncer_format() {
        let v = Verifier::from_password(b"pw", b"salt", 16).encode();
        let text = format!(
            ";; comment\n\"alice\" \"{v}\"\n\"b\"\"ob\" \"md5{}\"\n\n",
            "0123456789abcdef0123456789abcdef"
        );
        let list = UserList::parse(&text).unwrap();
        assert!(matches!(list.get("alice"), Some(StoredSecret::Scram(_))));
        assert!(matches!(list.get("b\"ob"), Some(StoredSecret::Md5(_))));
        assert_eq!(list.len(), 2);
    }

    #[test]
    fn cleartext_and_garbage_are_refused_with_line_numbers() {
        let errs =
            UserList::parse("\"alice\" \"hunter2\"\n\"bob\n\"carol\" \"md5zz\"").unwrap_err();
        assert_eq!(errs.iter().map(|e| e.0).collect::<Vec<_>>(), [1, 2, 3]);
        assert!(errs.iter().all(|e| !e.1.contains("hunter2")), "{errs:?}");
    }
}
