//! The plugins the daemon runs, as the native API shows them (`GET /v1/admin/plugins`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What `countersign plugin list` shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PluginReport {
    /// The plugins that passed verification, by directory name order.
    pub loaded: Vec<LoadedReport>,
    /// The plugin directories refused at start, and why.
    pub refused: Vec<RefusedReport>,
}

/// A loaded plugin as `countersign plugin list` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadedReport {
    /// Its name, as its signed manifest gives it.
    pub name: String,
    /// Its version, from the manifest.
    pub version: String,
    /// `token` or `gateway`.
    pub kind: String,
    /// The host capabilities its manifest lists (`hmac`, `http_request`, ...).
    pub capabilities: Vec<String>,
    /// The trusted publisher whose signature it carries.
    pub publisher: String,
    /// Whether every worker of the plugin runs.
    pub running: bool,
    /// Worker restarts since the daemon started, over all its workers.
    pub restarts: u64,
    /// How many worker processes it has.
    pub instances: usize,
}

/// A plugin directory refused at start.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefusedReport {
    /// The plugin's directory (or the plugin directory itself, when no publisher list could
    /// be read).
    pub dir: PathBuf,
    /// Why it was refused.
    pub reason: String,
}
