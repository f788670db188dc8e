//! The daemon's plugin host: at start it verifies every plugin directory against the trusted
//! publishers (signature, library hash, ABI, appliance version) and starts one worker per
//! accepted plugin on the verified bytes. Refused plugins are logged with their reason and the
//! daemon runs on without them.
//!
//! It never loads a library itself (the worker does) and never trusts a plugin it could not
//! verify. Calls to plugins, restarts with backoff and capability checks arrive with the token
//! engine (issue 3).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use countersign_plugin_ipc::PluginProcess;
use countersign_plugin_manifest::{verify, Manifest, TrustedPublishers};
use serde::Serialize;

use crate::config::PluginsSection;

/// A plugin that passed verification and runs in its worker.
#[derive(Debug)]
struct Loaded {
    manifest: Manifest,
    process: Mutex<PluginProcess>,
}

/// What `countersign plugin list` shows.
#[derive(Debug, Clone, Serialize)]
pub struct PluginReport {
    pub loaded: Vec<LoadedReport>,
    pub refused: Vec<RefusedReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadedReport {
    pub name: String,
    pub version: String,
    pub kind: String,
    pub capabilities: Vec<String>,
    pub publisher: String,
    pub running: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RefusedReport {
    pub dir: PathBuf,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct PluginHost {
    loaded: Vec<Loaded>,
    refused: Vec<RefusedReport>,
}

fn trusted(cfg: &PluginsSection) -> Result<TrustedPublishers, String> {
    let mut t = if cfg.trusted_publishers.exists() {
        TrustedPublishers::load(&cfg.trusted_publishers).map_err(|e| e.to_string())?
    } else {
        TrustedPublishers::default()
    };
    if !cfg.extra_trusted_publishers.is_empty() {
        let extra = Path::new(&cfg.extra_trusted_publishers);
        if extra.exists() {
            t.publisher.extend(TrustedPublishers::load(extra).map_err(|e| e.to_string())?.publisher);
        }
    }
    Ok(t)
}

impl PluginHost {
    /// Verifies and starts every plugin under `cfg.dir`. Blocking.
    pub fn start(cfg: &PluginsSection) -> PluginHost {
        let mut host = PluginHost::default();
        let entries = match std::fs::read_dir(&cfg.dir) {
            Ok(e) => e,
            Err(_) => {
                tracing::info!(dir = %cfg.dir.display(), "no plugin directory; running without plugins");
                return host;
            }
        };
        let trusted = match trusted(cfg) {
            Ok(t) => t,
            Err(reason) => {
                tracing::error!(%reason, "cannot read the trusted plugin publishers; no plugin is loaded");
                host.refused.push(RefusedReport { dir: cfg.dir.clone(), reason });
                return host;
            }
        };
        let mut dirs: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_dir()).collect();
        dirs.sort();
        let abi = countersign_plugin_abi::abi::ABI_MAJOR;
        for dir in dirs {
            let outcome =
                verify(&dir, &trusted, abi, env!("CARGO_PKG_VERSION")).map_err(|e| e.to_string()).and_then(|v| {
                    let timeout = Duration::from_millis(cfg.start_timeout_ms);
                    let p = PluginProcess::spawn(&cfg.worker, &v.library, timeout).map_err(|e| e.to_string())?;
                    if p.name != v.manifest.name || p.kind != v.manifest.kind {
                        return Err(format!(
                            "the library says it is {} ({}), the manifest says {} ({})",
                            p.name, p.kind, v.manifest.name, v.manifest.kind
                        ));
                    }
                    Ok(Loaded { manifest: v.manifest, process: Mutex::new(p) })
                });
            match outcome {
                Ok(l) => {
                    tracing::info!(plugin = %l.manifest.name, version = %l.manifest.version, "plugin loaded");
                    host.loaded.push(l);
                }
                Err(reason) => {
                    tracing::warn!(dir = %dir.display(), %reason, "plugin refused");
                    host.refused.push(RefusedReport { dir, reason });
                }
            }
        }
        host
    }

    pub fn report(&self) -> PluginReport {
        PluginReport {
            loaded: self
                .loaded
                .iter()
                .map(|l| LoadedReport {
                    name: l.manifest.name.clone(),
                    version: l.manifest.version.clone(),
                    kind: l.manifest.kind.clone(),
                    capabilities: l.manifest.capabilities.iter().cloned().collect(),
                    publisher: l.manifest.signature.as_ref().map(|s| s.publisher.clone()).unwrap_or_default(),
                    running: l.process.lock().map(|mut p| p.alive()).unwrap_or(false),
                })
                .collect(),
            refused: self.refused.clone(),
        }
    }
}
