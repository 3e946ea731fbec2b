//! Sinks check what they own in the configuration (`[alerts.*]`): channel names,
//! PostgreSQL identifiers, secrets and webhook settings; each sink is built once, so a
//! config that validates has sinks that can be built. Called while the snapshot is
//! assembled, that is by `pgvigil check`, startup and every reload.

use crate::config::{Checker, ConfigFile, WebhookKind};

/// ASCII letters, digits and underscores, not starting with a digit, at most 63 bytes.
fn identifier_ok(s: &str) -> bool {
    crate::sinks::postgres::valid_identifier(s)
}

/// Channel names appear in metrics labels and outbox folder names.
fn channel_name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
}

/// Checks the sinks; builds each one once, so a config that validates has sinks that
/// can be built.
pub fn alerts(c: &mut Checker<'_>, file: &ConfigFile) {
    let a = &file.alerts;
    let mut names = vec!["file".to_string()];
    if let Some(pg) = &a.postgres {
        let before = c.issues.len();
        if !channel_name_ok(&pg.name) {
            c.issue(
                &["alerts", "postgres", "name"],
                "use ASCII letters, digits, '-' and '_'",
            );
        }
        for (key, value) in [("schema", &pg.schema), ("table", &pg.table)] {
            if !identifier_ok(value) {
                c.issue(
                    &["alerts", "postgres", key],
                    format!(
                        "{value:?} is not a valid PostgreSQL identifier here: use ASCII \
                         letters, digits and underscores (no hyphens, dots, quotes or spaces)"
                    ),
                );
            }
        }
        if let Some(ca) = &pg.tls.ca_file {
            c.existing(&["alerts", "postgres", "tls", "ca_file"], ca);
        }
        if let Some(pw) = &pg.password {
            if let Err(e) = pw.resolve(c.base) {
                c.issue(&["alerts", "postgres", "password"], e);
            }
        }
        retry_ok(c, &["alerts", "postgres"], pg.retry());
        if names.contains(&pg.name) {
            c.issue(
                &["alerts", "postgres", "name"],
                format!("the channel name {:?} is taken; choose another", pg.name),
            );
        }
        // What the checks above cannot see (a CA file that is not PEM, ...).
        if c.issues.len() == before {
            if let Err(e) = crate::sinks::postgres::PostgresSink::new(pg, c.base) {
                c.issue(&["alerts", "postgres"], e.to_string());
            }
        }
        names.push(pg.name.clone());
    }
    for (name, hook) in &a.webhook {
        let key = ["alerts", "webhook", name.as_str()];
        if !channel_name_ok(name) {
            c.issue(&key, "webhook names use ASCII letters, digits, '-' and '_'");
            continue;
        }
        if names.contains(name) {
            c.issue(
                &key,
                format!("the channel name {name:?} is taken; rename the webhook"),
            );
        }
        names.push(name.clone());
        retry_ok(c, &key, hook.retry());
        if let Err(e) = crate::sinks::webhook::WebhookSink::new(name, hook, c.base) {
            let field = match hook.kind {
                WebhookKind::Pagerduty if hook.routing_key.is_none() => "routing_key",
                WebhookKind::Opsgenie if hook.api_key.is_none() => "api_key",
                WebhookKind::Generic | WebhookKind::Slack if hook.url.is_none() => "url",
                _ => "",
            };
            let mut full = key.to_vec();
            if !field.is_empty() {
                full.push(field);
            }
            c.issue(&full, e.to_string());
        }
    }
    if a.outbox_dir.as_os_str().is_empty() {
        c.issue(
            &["alerts", "outbox_dir"],
            "set a folder for undelivered findings",
        );
    }
}

fn retry_ok(c: &mut Checker<'_>, key: &[&str], r: crate::config::Retry) {
    if r.initial.is_zero() {
        let mut k = key.to_vec();
        k.push("retry_initial");
        c.issue(&k, "must be longer than 0s");
    }
    if r.max < r.initial {
        let mut k = key.to_vec();
        k.push("retry_max");
        c.issue(&k, "must not be shorter than retry_initial");
    }
}
