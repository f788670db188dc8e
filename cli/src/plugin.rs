//! `countersign plugin ...`: offline tools for whoever builds plugins. A publisher key signs a
//! plugin directory's `plugin.toml`; `verify` runs the same checks the daemon runs before it
//! loads a plugin.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use clap::Subcommand;
use countersign_plugin_manifest::{verify, PublisherKey, TrustedPublishers};

#[derive(Debug, Subcommand)]
pub enum PluginCmd {
    /// Create a publisher key (file mode 0600) and print the entry that trusts it.
    Keygen {
        /// Publisher name, as manifests will name it.
        name: String,
        /// Where to write the secret key.
        #[arg(long)]
        out: PathBuf,
    },
    /// Hash the library and sign the plugin directory's plugin.toml.
    Sign {
        dir: PathBuf,
        /// Publisher key file (from `plugin keygen`).
        #[arg(long)]
        key: PathBuf,
    },
    /// Plugins the running daemon loaded, and those it refused with the reason.
    List,
    /// Check a plugin directory as the daemon would before loading it.
    Verify {
        dir: PathBuf,
        /// Trusted publishers file ([[publisher]] name, ed25519).
        #[arg(long)]
        trusted: PathBuf,
    },
}

pub fn run(cmd: &PluginCmd, json: bool) -> anyhow::Result<()> {
    match cmd {
        // Answered by the daemon: main.rs sends it like the other daemon commands.
        PluginCmd::List => anyhow::bail!("plugin list needs the daemon"),
        PluginCmd::Keygen { name, out } => {
            let key = PublisherKey::generate(name);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(out)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e} (it must not exist yet)", out.display()))?;
            f.write_all(key.to_file_text().as_bytes())?;
            let entry = key.publisher();
            if json {
                println!("{}", serde_json::to_string_pretty(&entry)?);
            } else {
                println!(
                    "wrote {} (keep it secret)\nto trust it, add to the trusted publishers file:\n\n[[publisher]]\nname = \"{}\"\ned25519 = \"{}\"",
                    out.display(),
                    entry.name,
                    entry.ed25519
                );
            }
        }
        PluginCmd::Sign { dir, key } => {
            let text = zeroize::Zeroizing::new(
                std::fs::read_to_string(key).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", key.display()))?,
            );
            let m = PublisherKey::from_file_text(&text)?.sign_dir(dir)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&m)?);
            } else {
                println!("signed {} {} ({}, sha256 {})", m.name, m.version, m.library, m.sha256);
            }
        }
        PluginCmd::Verify { dir, trusted } => {
            let t = TrustedPublishers::load(trusted)?;
            let v = verify(dir, &t, countersign_plugin_abi::abi::ABI_MAJOR, env!("CARGO_PKG_VERSION"))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v.manifest)?);
            } else {
                let m = &v.manifest;
                let publisher = m.signature.as_ref().map_or("-", |s| s.publisher.as_str());
                println!(
                    "ok: {} {} ({} plugin, ABI {}, capabilities {}), signed by {publisher}",
                    m.name,
                    m.version,
                    m.kind,
                    m.abi,
                    m.capabilities.iter().cloned().collect::<Vec<_>>().join(",")
                );
            }
        }
    }
    Ok(())
}
