//! Detection checks what it owns in the configuration: the rule set `[rules]` describes,
//! each problem with its rule file and line. Called while the snapshot is assembled, that
//! is by `pgvigil check`, startup and every reload.

use super::Rule;
use crate::config::{Checker, ConfigFile, ConfigIssue};
use std::sync::Arc;

/// Loads the rule set `[rules]` names; problems are added to `c`.
pub fn rules(c: &mut Checker<'_>, file: &ConfigFile) -> Vec<Arc<Rule>> {
    if file.rules.max_groups == 0 {
        c.issue(&["rules", "max_groups"], "must be at least 1");
    }
    match crate::detect::load::load(&file.rules, c.base) {
        Ok(rules) => rules,
        Err(issues) => {
            for i in issues {
                if i.file.as_os_str().is_empty() {
                    c.issue(&["rules", "disable"], i.message);
                } else {
                    c.issues.push(ConfigIssue {
                        file: Some(i.file),
                        line: i.line,
                        key: i.key,
                        message: i.message,
                    });
                }
            }
            Vec::new()
        }
    }
}
