//! The token path: classification from sqlparser's tokenizer when the parser cannot.

use super::{Classification, ParsePath};

/// Classifies one statement from its tokens. Never fails: what nothing understands is
/// MISC / UNKNOWN.
pub fn classify(_sql: &str) -> Classification {
    Classification::unknown(ParsePath::Tokens)
}
