//! The validated configuration snapshot sessions use: the described file ([`config`]),
//! checked by config and by every module that owns a part of it, and built (rules, TLS,
//! upstream routes, auth material, the classifier).
//!
//! This module sits above all of them so that none of them imports another to validate:
//! config describes, the owners (`enforce::check`, `detect::check`, `sinks::check`,
//! `tls::check`, `backend::target`, `auth::check`) check and build what they own with
//! config's [`Checker`](crate::config::Checker), and [`assemble`] calls them in order.
//!
//! Loading is all-or-nothing: every problem found is reported with the line it is on, and
//! nothing is used until the whole file is valid (the TLS material included). Sessions hold
//! an `Arc<Config>` snapshot, so a later reload never changes a session mid-flight.
//!
//! [`config`]: crate::config

mod assemble;
#[cfg(test)]
mod tests;

use crate::backend::UpstreamTarget;
use crate::config::{ConfigError, ConfigFile};
use crate::matching::glob_match;
use crate::sql::Classifier;
use crate::tls::ClientTls;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A validated configuration, ready for use.
#[derive(Debug)]
pub struct Config {
    pub file: ConfigFile,
    /// The path the config was read from (relative paths inside resolve against its folder).
    pub path: PathBuf,
    /// Client-side TLS (absent with mode=disable).
    pub client_tls: Option<Arc<ClientTls>>,
    pub default_upstream: UpstreamTarget,
    /// `[databases.NAME]` routes.
    pub routes: HashMap<String, UpstreamTarget>,
    /// The statement classifier built from `[audit]` (its cache lives as long as this
    /// snapshot).
    pub classifier: Arc<Classifier>,
    /// The detection rules (`[rules]`), validated.
    pub rules: Vec<Arc<crate::detect::Rule>>,
    /// What `[auth]` loaded: auth file, auth_query lookups, cert map, upstream CA.
    pub auth: crate::auth::AuthSetup,
}

impl Config {
    /// Whether `user` is a service account (`[audit] service_accounts`).
    pub fn is_service_account(&self, user: &str) -> bool {
        self.file
            .audit
            .service_accounts
            .iter()
            .any(|p| glob_match(p, user))
    }

    /// The upstream for a client's requested database name.
    pub fn route(&self, database: &str) -> &UpstreamTarget {
        self.routes.get(database).unwrap_or(&self.default_upstream)
    }
}

/// Reads, parses and validates a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    load_str(&text, path)
}

/// Parses and validates config text; `path` names it in errors and anchors relative paths.
pub fn load_str(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let file = crate::config::parse(text, path)?;
    let base = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    assemble::assemble(file, text, &base)
        .map_err(|issues| ConfigError::Invalid {
            path: path.to_path_buf(),
            issues,
        })
        .map(|mut c| {
            c.path = path.to_path_buf();
            c
        })
}
