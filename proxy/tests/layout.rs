//! The module layout issue 9 promised, kept by reading the source: `config/` only
//! describes the configuration (its shapes, defaults and its own checks), so it names no
//! module of the crate beyond the few leaves it is allowed to use. The owners (detect,
//! sinks, enforce, auth, tls, backend) check what they own with config's `Checker`, and
//! `snapshot` assembles the result; an import from config back into one of them would
//! bring the old circle back (config -> detect -> config).
//!
//! The owners' checks must not name `snapshot`, which calls them.
//!
//! The scan follows `crate::` paths, grouped ones included (`use crate::{a, b}` across
//! lines); comments are skipped, so a doc line may name any module.

use std::path::{Path, PathBuf};

/// The modules `config/` may name: itself, the shared matching leaf, and `sql` (for the
/// `Redact` setting; `sql` imports nothing of the crate, so no circle can form through it).
const ALLOWED: &[&str] = &["config", "matching", "sql"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// The source without comments (`//` to the end of the line, `/* */` blocks), string
/// literals kept: a `crate::` inside a string is not an import, but no config file has one.
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("//") {
            let end = after.find('\n').unwrap_or(after.len());
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix("/*") {
            let end = after.find("*/").map(|i| i + 2).unwrap_or(after.len());
            // Keep the line count so reported lines stay right.
            out.extend(after[..end].chars().filter(|&c| c == '\n'));
            rest = &after[end..];
        } else {
            let c = rest.chars().next().expect("non-empty");
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

fn ident(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// Every `crate::` module a source text names, with the 1-based line it is on.
fn crate_modules(text: &str) -> Vec<(usize, String)> {
    let text = strip_comments(text);
    let line_of = |at: usize| text[..at].matches('\n').count() + 1;
    let mut found = Vec::new();
    for (at, _) in text.match_indices("crate::") {
        // `pgvigil_crate::x` or `my_crate::x` are other paths.
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let rest = text[at + "crate::".len()..].trim_start();
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a::X, b, c::{Y, Z}}`: the first segment of each top-level item.
            // `rest` and `group` are suffixes of `text`, so their offsets follow from lengths.
            let group_start = text.len() - group.len();
            let mut depth = 0usize;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && (c.is_ascii_alphabetic() || c == '_') => {
                        let name = ident(&group[i..]);
                        found.push((line_of(group_start + i), name.to_string()));
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                found.push((line_of(at), name.to_string()));
            }
        }
    }
    found
}

#[test]
fn the_scan_finds_every_form_of_import() {
    let sample = "//! crate::detect in a doc comment is fine\n\
                  use crate::matching::glob_match;\n\
                  use crate::{\n    sql::Redact,\n    tls::{ClientTls, UpstreamTls},\n};\n\
                  pub x: crate::detect::Severity, /* crate::auth */\n\
                  let y = my_crate::thing;\n";
    let found = crate_modules(sample);
    let names: Vec<(usize, &str)> = found.iter().map(|(l, n)| (*l, n.as_str())).collect();
    assert_eq!(
        names,
        [(2, "matching"), (4, "sql"), (5, "tls"), (7, "detect")],
        "the scan must find plain, grouped and multi-line imports and skip comments"
    );
}

#[test]
fn config_names_no_module_it_does_not_own() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/config");
    let mut files = Vec::new();
    rust_files(&dir, &mut files);
    files.sort();
    assert!(
        files.len() >= 5,
        "config/ should hold its files: {}",
        dir.display()
    );
    let mut wrong = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read source");
        for (line, module) in crate_modules(&text) {
            if !ALLOWED.contains(&module.as_str()) {
                let shown = text.lines().nth(line - 1).unwrap_or("").trim();
                wrong.push(format!(
                    "{}:{line}: imports crate::{module} ({shown})",
                    file.strip_prefix(env!("CARGO_MANIFEST_DIR"))
                        .unwrap_or(file)
                        .display()
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "config/ describes the configuration and may only name crate::{{{}}}; checks and \
         building belong to the owning module (called from snapshot/). Found:\n  {}",
        ALLOWED.join(", "),
        wrong.join("\n  ")
    );
}

/// The owners' checks, which the snapshot calls: each may use config (and what it owns),
/// never the snapshot it is called from, or the assembly would be a circle again.
/// (`enforce::access::check` shares its file with the login decision, which reads the
/// snapshot at run time, so that file is not listed; its check takes only `config::Access`.)
const OWNER_CHECKS: &[&str] = &[
    "src/detect/check.rs",
    "src/sinks/check.rs",
    "src/tls/check.rs",
    "src/auth/check.rs",
    "src/backend/target.rs",
];

#[test]
fn owner_checks_do_not_reach_back_into_the_snapshot() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut wrong = Vec::new();
    for file in OWNER_CHECKS {
        let text = std::fs::read_to_string(root.join(file))
            .unwrap_or_else(|e| panic!("{file}: {e} (moved? update OWNER_CHECKS)"));
        let modules = crate_modules(&text);
        assert!(
            modules.iter().any(|(_, m)| m == "config"),
            "{file} should check with config's Checker"
        );
        for (line, module) in modules {
            if module == "snapshot" {
                wrong.push(format!("{file}:{line}: imports crate::snapshot"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "an owner's check names the snapshot that calls it:\n  {}",
        wrong.join("\n  ")
    );
}
