//! Loading the rule set: the files built into the binary (the repository's `rules/`
//! folder), then `[rules] dir`, then `[rules] disable`. Every problem is reported with the
//! file and line it is on; nothing is used unless the whole set is valid.

use super::rule::Rule;
use crate::config::locate::{line_of, line_of_key};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One problem in a rule file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleIssue {
    /// The file (`rules/<id>.toml` for built-in rules).
    pub file: PathBuf,
    pub line: Option<usize>,
    /// Dotted key, empty when the problem is the file as a whole.
    pub key: String,
    pub message: String,
}

/// The built-in rules: (file name, text). Each file is named after its rule's id.
pub const DEFAULTS: [(&str, &str); 17] = [
    (
        "failed-logins.toml",
        include_str!("../../../rules/failed-logins.toml"),
    ),
    (
        "error-burst.toml",
        include_str!("../../../rules/error-burst.toml"),
    ),
    (
        "excessive-alter.toml",
        include_str!("../../../rules/excessive-alter.toml"),
    ),
    (
        "excessive-drop.toml",
        include_str!("../../../rules/excessive-drop.toml"),
    ),
    (
        "excessive-delete.toml",
        include_str!("../../../rules/excessive-delete.toml"),
    ),
    ("grant.toml", include_str!("../../../rules/grant.toml")),
    (
        "human-data-change.toml",
        include_str!("../../../rules/human-data-change.toml"),
    ),
    (
        "unbounded-write.toml",
        include_str!("../../../rules/unbounded-write.toml"),
    ),
    (
        "privilege-escalation.toml",
        include_str!("../../../rules/privilege-escalation.toml"),
    ),
    (
        "bulk-export.toml",
        include_str!("../../../rules/bulk-export.toml"),
    ),
    (
        "dangerous-function.toml",
        include_str!("../../../rules/dangerous-function.toml"),
    ),
    // Deny rules: shipped switched off (`enabled = false`), see `[rules] enable`.
    (
        "deny-unbounded-write.toml",
        include_str!("../../../rules/deny-unbounded-write.toml"),
    ),
    (
        "deny-human-drop.toml",
        include_str!("../../../rules/deny-human-drop.toml"),
    ),
    (
        "deny-copy-program.toml",
        include_str!("../../../rules/deny-copy-program.toml"),
    ),
    (
        "deny-server-files.toml",
        include_str!("../../../rules/deny-server-files.toml"),
    ),
    (
        "deny-alter-system.toml",
        include_str!("../../../rules/deny-alter-system.toml"),
    ),
    (
        "deny-large-objects.toml",
        include_str!("../../../rules/deny-large-objects.toml"),
    ),
];

/// Parses and checks one rule file. `file` names it in problems.
pub fn parse_rule(text: &str, file: &Path) -> Result<Rule, Vec<RuleIssue>> {
    let rule: Rule = toml::from_str(text).map_err(|e| {
        vec![RuleIssue {
            file: file.to_path_buf(),
            line: e.span().map(|s| line_of(text, s.start)),
            key: String::new(),
            message: e.message().trim().to_string(),
        }]
    })?;
    let mut issues: Vec<RuleIssue> = rule
        .check()
        .into_iter()
        .map(|p| {
            let path: Vec<&str> = p.key.split('.').collect();
            RuleIssue {
                file: file.to_path_buf(),
                line: line_of_key(text, &path),
                key: p.key.to_string(),
                message: p.message,
            }
        })
        .collect();
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    if issues.is_empty() && stem != rule.id {
        issues.push(RuleIssue {
            file: file.to_path_buf(),
            line: line_of_key(text, &["id"]),
            key: "id".into(),
            message: format!(
                "the file of rule {:?} must be named {}.toml",
                rule.id, rule.id
            ),
        });
    }
    if issues.is_empty() {
        Ok(rule)
    } else {
        Err(issues)
    }
}

/// The rule set `[rules]` describes. `base` anchors a relative `dir` (the config file's
/// folder).
pub fn load(cfg: &crate::config::Rules, base: &Path) -> Result<Vec<Arc<Rule>>, Vec<RuleIssue>> {
    let mut issues = Vec::new();
    // By id, so a folder's rule replaces the built-in one of the same id.
    let mut rules: BTreeMap<String, Arc<Rule>> = BTreeMap::new();
    if cfg.defaults {
        for (name, text) in DEFAULTS {
            match parse_rule(text, &Path::new("rules").join(name)) {
                Ok(r) => {
                    rules.insert(r.id.clone(), Arc::new(r));
                }
                Err(mut e) => issues.append(&mut e),
            }
        }
    }
    if let Some(dir) = &cfg.dir {
        let dir = if dir.is_absolute() {
            dir.clone()
        } else {
            base.join(dir)
        };
        let mut own: BTreeMap<String, PathBuf> = BTreeMap::new();
        match rule_files(&dir) {
            Ok(files) => {
                for path in files {
                    let text = match std::fs::read_to_string(&path) {
                        Ok(t) => t,
                        Err(e) => {
                            issues.push(whole_file(&path, format!("cannot read: {e}")));
                            continue;
                        }
                    };
                    match parse_rule(&text, &path) {
                        Ok(r) => {
                            if let Some(first) = own.insert(r.id.clone(), path.clone()) {
                                issues.push(whole_file(
                                    &path,
                                    format!(
                                        "rule id {:?} is also defined in {}",
                                        r.id,
                                        first.display()
                                    ),
                                ));
                            }
                            rules.insert(r.id.clone(), Arc::new(r));
                        }
                        Err(mut e) => issues.append(&mut e),
                    }
                }
            }
            Err(e) => issues.push(whole_file(
                &dir,
                format!("cannot read the rules folder: {e} (change [rules] dir)"),
            )),
        }
    }
    for id in &cfg.enable {
        match rules.get_mut(id) {
            Some(r) => Arc::make_mut(r).enabled = true,
            None if issues.is_empty() => issues.push(RuleIssue {
                file: PathBuf::new(),
                line: None,
                key: "rules.enable".into(),
                message: format!("no rule has the id {id:?}"),
            }),
            None => {}
        }
    }
    for id in &cfg.disable {
        if rules.remove(id).is_none() && issues.is_empty() {
            issues.push(RuleIssue {
                file: PathBuf::new(),
                line: None,
                key: "rules.disable".into(),
                message: format!("no rule has the id {id:?}"),
            });
        }
    }
    if issues.is_empty() {
        // A rule shipped switched off and not enabled is not loaded at all.
        Ok(rules.into_values().filter(|r| r.enabled).collect())
    } else {
        Err(issues)
    }
}

fn whole_file(path: &Path, message: String) -> RuleIssue {
    RuleIssue {
        file: path.to_path_buf(),
        line: None,
        key: String::new(),
        message,
    }
}

/// `*.toml` files of a folder, sorted by name.
fn rule_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "toml") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Rules;

    const DENY_RULES: usize = 6;

    #[test]
    fn built_in_rules_are_valid() {
        let rules = load(&Rules::default(), Path::new(".")).unwrap();
        assert_eq!(rules.len(), DEFAULTS.len() - DENY_RULES);
        // Every shipped deny rule is off until enabled, and valid once it is.
        let all = Rules {
            enable: DEFAULTS
                .iter()
                .filter(|(n, _)| n.starts_with("deny-"))
                .map(|(n, _)| n.trim_end_matches(".toml").to_string())
                .collect(),
            ..Rules::default()
        };
        assert_eq!(all.enable.len(), DENY_RULES);
        assert_eq!(load(&all, Path::new(".")).unwrap().len(), DEFAULTS.len());
    }

    #[test]
    fn problems_name_file_and_line() {
        let text = "id = \"x\"\ndescription = \"d\"\ncategory = \"c\"\nseverity = \"high\"\n\
                    on = \"auth_failure\"\n\n[match]\nclass = [\"WRITE\"]\n";
        let e = parse_rule(text, Path::new("/r/x.toml")).unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].line, Some(8), "{e:?}");
        assert_eq!(e[0].key, "match.class");
        let text = "id = \"x\"\ndescription = \"d\"\ncategory = \"c\"\nseverity = \"urgent\"\non = \"statement\"\n";
        let e = parse_rule(text, Path::new("/r/x.toml")).unwrap_err();
        assert_eq!(e[0].line, Some(4), "{e:?}");
        let text = "id = \"y\"\ndescription = \"d\"\ncategory = \"c\"\nseverity = \"low\"\non = \"statement\"\n";
        let e = parse_rule(text, Path::new("/r/x.toml")).unwrap_err();
        assert!(e[0].message.contains("y.toml"), "{e:?}");
        let text = "id = \"x\"\ndescription = \"d\"\ncategory = \"c\"\nseverity = \"low\"\non = \"auth_failure\"\n\
                    action = \"block\"\nblock_for = \"1m\"\n";
        let e = parse_rule(text, Path::new("/r/x.toml")).unwrap_err();
        assert_eq!(e[0].key, "group_by", "{e:?}");
        // A typo inside [match] is named, with its line.
        let text = "id = \"x\"\ndescription = \"d\"\ncategory = \"c\"\nseverity = \"low\"\n\
                    on = \"statement\"\n\n[match]\ncomand = [\"DROP *\"]\n";
        let e = parse_rule(text, Path::new("/r/x.toml")).unwrap_err();
        assert!(e[0].message.contains("unknown field `comand`"), "{e:?}");
        assert_eq!(e[0].line, Some(8), "{e:?}");
    }

    #[test]
    fn folder_replaces_and_disables() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("grant.toml"),
            "id = \"grant\"\ndescription = \"mine\"\ncategory = \"c\"\nseverity = \"low\"\non = \"statement\"\n",
        )
        .unwrap();
        let cfg = Rules {
            dir: Some(dir.path().to_path_buf()),
            disable: vec!["error-burst".into()],
            ..Rules::default()
        };
        let rules = load(&cfg, Path::new(".")).unwrap();
        assert_eq!(rules.len(), DEFAULTS.len() - DENY_RULES - 1);
        let grant = rules.iter().find(|r| r.id == "grant").unwrap();
        assert_eq!(grant.description, "mine");
        let cfg = Rules {
            disable: vec!["nope".into()],
            ..Rules::default()
        };
        let e = load(&cfg, Path::new(".")).unwrap_err();
        assert!(e[0].message.contains("nope"));
    }
}
