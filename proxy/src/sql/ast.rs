//! The sqlparser path: class, command, objects and functions from the parsed statement.

use super::Classification;

/// Classifies one statement with sqlparser. `None` when it does not parse as exactly one
/// statement, or parses into something known to be misread (then the token path decides).
pub fn classify(_sql: &str) -> Option<Classification> {
    None
}
