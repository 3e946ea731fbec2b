//! Assembling a snapshot: config's own checks, then each owner's, in the order
//! `pgvigil check` reports them; the snapshot is built only when none found a problem.

use super::Config;
use crate::config::{Checker, ConfigFile, ConfigIssue, DatabaseRoute};
use crate::sql::{Classifier, ClassifierOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Validates `file` (its text `text`, relative paths against `base`); on success every
/// part is built and ready.
pub(super) fn assemble(
    file: ConfigFile,
    text: &str,
    base: &Path,
) -> Result<Config, Vec<ConfigIssue>> {
    let mut c = Checker::new(text, base);
    crate::config::check(&mut c, &file);
    // What config describes but other modules own is checked, and built, by its owner.
    crate::enforce::check(&mut c, &file);
    let rules = crate::detect::check::rules(&mut c, &file);
    crate::sinks::check::alerts(&mut c, &file);
    let client_tls = crate::tls::check::client(&mut c, &file);
    let default_upstream = crate::backend::target::resolve(
        &mut c,
        &file.upstream,
        &DatabaseRoute::default(),
        &["upstream"],
    );
    let auth = crate::auth::check::setup(&mut c, &file, default_upstream.as_ref());
    let routes = crate::backend::target::routes(&mut c, &file);
    match (c.issues.is_empty(), default_upstream) {
        (true, Some(default_upstream)) => Ok(Config {
            path: PathBuf::new(),
            client_tls,
            default_upstream,
            routes,
            rules,
            auth,
            classifier: Arc::new(Classifier::new(ClassifierOptions {
                max_parse_bytes: file.audit.max_parse_bytes,
                cache_bytes: file.audit.classify_cache_bytes,
                redact: file.audit.redact,
            })),
            file,
        }),
        _ => Err(c.issues),
    }
}
