//! Finding the line a key is on, so validation errors can point at it.
//!
//! serde gives spans only for syntax errors; semantic checks (a missing certificate, a
//! mode that needs a CA) run after deserialisation, so we re-read the document with
//! toml's span-preserving parser and look the key up by its dotted path.

use toml::de::{DeTable, DeValue};

/// 1-based line number of byte offset `pos` in `text`.
pub fn line_of(text: &str, pos: usize) -> usize {
    let end = pos.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The line of the key at `path` (e.g. `["listen", "tls", "mode"]`), or of the closest
/// enclosing table that exists.
pub fn line_of_key(text: &str, path: &[&str]) -> Option<usize> {
    let doc = DeTable::parse(text).ok()?;
    let mut table = doc.get_ref();
    let mut best = None;
    for (i, part) in path.iter().enumerate() {
        let Some((key, value)) = table.iter().find(|(k, _)| k.get_ref().as_ref() == *part) else {
            break;
        };
        best = Some(line_of(text, key.span().start));
        if i + 1 == path.len() {
            break;
        }
        match value.get_ref() {
            DeValue::Table(t) => table = t,
            _ => break,
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_keys() {
        let text = "[listen]\naddr = \"x\"\n\n[listen.tls]\nmode = \"require\"\n";
        assert_eq!(line_of_key(text, &["listen", "addr"]), Some(2));
        assert_eq!(line_of_key(text, &["listen", "tls", "mode"]), Some(5));
        assert_eq!(line_of_key(text, &["upstream"]), None);
        assert_eq!(line_of_key(text, &["listen", "tls", "ca_file"]), Some(4));
    }
}
