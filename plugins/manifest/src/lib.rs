//! Signed plugin manifests.
//!
//! A plugin is a directory with its library and a `plugin.toml` naming it: name, version, kind,
//! ABI, the library's file name and SHA-256, the host capabilities it may use, the minimum
//! appliance version, and an Ed25519 signature by a publisher. Verification ([`verify`]) checks
//! the signature against the trusted publishers, the library's hash, the ABI major and the
//! appliance version, and returns the library's bytes as read for the hash check, so that the
//! bytes that were checked are the bytes that get loaded.
//!
//! The signed message is a fixed prefix and the manifest's canonical JSON form (fields in a
//! fixed order, capabilities sorted), so the TOML layout and comments of the file do not
//! matter. This crate never loads a library and holds no appliance key: publisher keys are
//! software keys of whoever builds plugins.

#![warn(missing_docs, unreachable_pub)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The manifest's file name in a plugin directory.
pub const MANIFEST_FILE: &str = "plugin.toml";
/// Domain separation for manifest signatures.
const SIGNED_PREFIX: &[u8] = b"countersign plugin manifest v1\n";

/// Host capabilities a manifest can list (design.md, "Plugins").
pub const KNOWN_CAPABILITIES: &[&str] =
    &["hmac", "verify", "aes_ecb_decrypt", "random", "now", "http_request", "smtp_send"];

/// Why a plugin is not loaded or a manifest not made: each names the plugin or file and the
/// fault.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The manifest or library could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The manifest is not valid TOML of the expected fields.
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The manifest has no signature block.
    #[error("plugin {name}: not signed")]
    Unsigned {
        /// The plugin.
        name: String,
    },
    /// The signing publisher is not among the trusted ones.
    #[error("plugin {name}: signed by '{publisher}', which is not a trusted publisher")]
    UntrustedPublisher {
        /// The plugin.
        name: String,
        /// The publisher its manifest names.
        publisher: String,
    },
    /// The signature does not verify over the manifest.
    #[error("plugin {name}: the signature does not match the manifest")]
    BadSignature {
        /// The plugin.
        name: String,
    },
    /// The library's hash is not the one the manifest signs.
    #[error("plugin {name}: {library} has changed since it was signed (SHA-256 differs)")]
    LibraryChanged {
        /// The plugin.
        name: String,
        /// The library's file name.
        library: String,
    },
    /// Built for another major version of the plugin ABI.
    #[error("plugin {name}: built for plugin ABI {found}, this appliance speaks {expected}.x")]
    AbiMajor {
        /// The plugin.
        name: String,
        /// The ABI it was built for.
        found: String,
        /// The ABI major version the appliance speaks.
        expected: u16,
    },
    /// Needs a newer appliance.
    #[error("plugin {name}: needs appliance {needed} or newer, this is {running}")]
    TooNew {
        /// The plugin.
        name: String,
        /// The version it needs.
        needed: String,
        /// The version running.
        running: String,
    },
    /// Asks for a capability the host does not offer.
    #[error("plugin {name}: unknown capability '{capability}'")]
    Capability {
        /// The plugin.
        name: String,
        /// The capability asked for.
        capability: String,
    },
    /// A publisher key that cannot be read or made.
    #[error("publisher key: {0}")]
    Key(String),
}

/// The signature block of a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureBlock {
    /// Name of the publisher key, as listed in the trusted publishers.
    pub publisher: String,
    /// Base64 Ed25519 signature.
    pub ed25519: String,
}

/// `plugin.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The plugin's name, unique on the appliance.
    pub name: String,
    /// The plugin's own version.
    pub version: String,
    /// `token` or `gateway`.
    pub kind: String,
    /// Plugin ABI `major.minor` the library was built against.
    pub abi: String,
    /// File name of the library, in the same directory.
    pub library: String,
    /// Hex SHA-256 of the library.
    pub sha256: String,
    /// The host capabilities it may call ([`KNOWN_CAPABILITIES`]).
    pub capabilities: BTreeSet<String>,
    /// The oldest appliance version it runs on.
    pub min_appliance: String,
    /// The publisher's signature; none before signing.
    pub signature: Option<SignatureBlock>,
}

impl Manifest {
    /// The bytes the signature covers: a fixed prefix and the canonical JSON of every field
    /// but the signature (struct order; capabilities sorted by the set).
    pub fn signed_bytes(&self) -> Vec<u8> {
        let unsigned = Manifest { signature: None, ..self.clone() };
        let mut out = SIGNED_PREFIX.to_vec();
        // Serialising plain strings and sets cannot fail.
        out.extend(serde_json::to_vec(&unsigned).unwrap_or_default());
        out
    }

    /// Reads a manifest (`path` for messages): known capabilities, a kind, a bare library file name.
    pub fn parse(path: &Path, text: &str) -> Result<Manifest, ManifestError> {
        let m: Manifest =
            toml::from_str(text).map_err(|e| ManifestError::Format { path: path.into(), message: e.to_string() })?;
        for c in &m.capabilities {
            if !KNOWN_CAPABILITIES.contains(&c.as_str()) {
                return Err(ManifestError::Capability { name: m.name.clone(), capability: c.clone() });
            }
        }
        if m.kind != "token" && m.kind != "gateway" {
            return Err(ManifestError::Format { path: path.into(), message: format!("unknown kind '{}'", m.kind) });
        }
        if m.library.contains('/') {
            return Err(ManifestError::Format { path: path.into(), message: "library must be a file name".into() });
        }
        Ok(m)
    }

    /// The manifest as `plugin.toml` text.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }
}

/// A publisher's signing key (for building plugins). Zeroized on drop; Debug prints `***`.
pub struct PublisherKey {
    /// The publisher's name, as manifests name it.
    pub name: String,
    key: SigningKey,
}

impl std::fmt::Debug for PublisherKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublisherKey({}, ***)", self.name)
    }
}

/// A trusted publisher: a name and an Ed25519 public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Publisher {
    /// The publisher's name.
    pub name: String,
    /// Base64 of the 32-byte Ed25519 public key.
    pub ed25519: String,
}

/// The trusted publishers file: `[[publisher]]` entries.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedPublishers {
    #[serde(default)]
    /// Each trusted publisher.
    pub publisher: Vec<Publisher>,
}

impl TrustedPublishers {
    /// Reads the trusted publishers file.
    pub fn load(path: &Path) -> Result<TrustedPublishers, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read { path: path.into(), source })?;
        toml::from_str(&text).map_err(|e| ManifestError::Format { path: path.into(), message: e.to_string() })
    }

    fn key(&self, name: &str) -> Option<Result<VerifyingKey, ManifestError>> {
        self.publisher.iter().find(|p| p.name == name).map(|p| {
            let raw = STANDARD.decode(&p.ed25519).map_err(|e| ManifestError::Key(e.to_string()))?;
            let bytes: [u8; 32] = raw.try_into().map_err(|_| ManifestError::Key("not 32 bytes".into()))?;
            VerifyingKey::from_bytes(&bytes).map_err(|e| ManifestError::Key(e.to_string()))
        })
    }
}

impl PublisherKey {
    /// A new random key.
    pub fn generate(name: &str) -> PublisherKey {
        PublisherKey { name: name.into(), key: SigningKey::generate(&mut rand::rngs::OsRng) }
    }

    /// The key file form: `name:base64-secret` (keep it 0600).
    pub fn to_file_text(&self) -> zeroize::Zeroizing<String> {
        zeroize::Zeroizing::new(format!("{}:{}\n", self.name, STANDARD.encode(self.key.to_bytes())))
    }

    /// Reads a key file's text (`name:base64-secret`).
    pub fn from_file_text(text: &str) -> Result<PublisherKey, ManifestError> {
        let (name, b64) =
            text.trim().split_once(':').ok_or_else(|| ManifestError::Key("expected name:base64".into()))?;
        let raw = zeroize::Zeroizing::new(STANDARD.decode(b64).map_err(|e| ManifestError::Key(e.to_string()))?);
        let bytes: [u8; 32] = raw.as_slice().try_into().map_err(|_| ManifestError::Key("not 32 bytes".into()))?;
        Ok(PublisherKey { name: name.into(), key: SigningKey::from_bytes(&bytes) })
    }

    /// The entry to put in a trusted publishers file.
    pub fn publisher(&self) -> Publisher {
        Publisher { name: self.name.clone(), ed25519: STANDARD.encode(self.key.verifying_key().to_bytes()) }
    }

    /// Signs `m` as it is (its `sha256` included), replacing any signature it had.
    pub fn sign(&self, m: &mut Manifest) {
        m.signature = None;
        let sig = self.key.sign(&m.signed_bytes());
        m.signature = Some(SignatureBlock { publisher: self.name.clone(), ed25519: STANDARD.encode(sig.to_bytes()) });
    }

    /// Fills in the library's hash and signs the manifest in `dir`, rewriting `plugin.toml`.
    pub fn sign_dir(&self, dir: &Path) -> Result<Manifest, ManifestError> {
        let path = dir.join(MANIFEST_FILE);
        let text = read_text(&path)?;
        let mut m = Manifest::parse(&path, &text)?;
        let lib = dir.join(&m.library);
        let bytes = std::fs::read(&lib).map_err(|source| ManifestError::Read { path: lib.clone(), source })?;
        m.sha256 = hex::encode(Sha256::digest(&bytes));
        self.sign(&mut m);
        std::fs::write(&path, m.to_toml()).map_err(|source| ManifestError::Read { path, source })?;
        Ok(m)
    }
}

fn read_text(path: &Path) -> Result<String, ManifestError> {
    std::fs::read_to_string(path).map_err(|source| ManifestError::Read { path: path.into(), source })
}

/// A plugin that passed every check, with the library bytes that were hashed.
#[derive(Clone)]
pub struct VerifiedPlugin {
    /// Its manifest, signature checked.
    pub manifest: Manifest,
    /// The library's bytes, the very ones whose hash was checked.
    pub library: Vec<u8>,
}

impl std::fmt::Debug for VerifiedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedPlugin")
            .field("manifest", &self.manifest)
            .field("library_len", &self.library.len())
            .finish()
    }
}

/// Parses a `major.minor[.patch]` version into numbers for comparison.
fn version_parts(v: &str) -> Vec<u64> {
    v.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

/// Checks the plugin in `dir` against `trusted`, the host's plugin ABI major and the running
/// appliance version. Returns the library bytes it hashed: load these, not the path again.
pub fn verify(
    dir: &Path,
    trusted: &TrustedPublishers,
    abi_major: u16,
    appliance_version: &str,
) -> Result<VerifiedPlugin, ManifestError> {
    let (manifest, lib) = verify_dir(dir, trusted, abi_major, appliance_version)?;
    let library = std::fs::read(&lib).map_err(|source| ManifestError::Read { path: lib.clone(), source })?;
    check_library(&manifest, &lib, library.as_slice())?;
    Ok(VerifiedPlugin { manifest, library })
}

/// Every check of [`verify`] on the plugin in `dir` but its library's bytes: the signed
/// manifest, and the path of the library it names. The caller copies the library to where
/// nothing can change it, then gives those bytes to [`check_library`] (the daemon hashes a
/// sealed memfd, which is what its workers load).
pub fn verify_dir(
    dir: &Path,
    trusted: &TrustedPublishers,
    abi_major: u16,
    appliance_version: &str,
) -> Result<(Manifest, PathBuf), ManifestError> {
    let path = dir.join(MANIFEST_FILE);
    let m = verify_manifest(&path, &read_text(&path)?, trusted, abi_major, appliance_version)?;
    let lib = dir.join(&m.library);
    Ok((m, lib))
}

/// Whether `bytes`, read to the end, are the library `manifest` signed (its SHA-256), read in
/// blocks so a library never needs to be in memory whole; `path` names it in errors.
pub fn check_library(manifest: &Manifest, path: &Path, mut bytes: impl std::io::Read) -> Result<(), ManifestError> {
    let mut hash = Sha256::new();
    let mut block = [0u8; 64 * 1024];
    loop {
        let n = match bytes.read(&mut block) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(source) => return Err(ManifestError::Read { path: path.into(), source }),
        };
        hash.update(&block[..n]);
    }
    if hex::encode(hash.finalize()) != manifest.sha256 {
        return Err(ManifestError::LibraryChanged { name: manifest.name.clone(), library: manifest.library.clone() });
    }
    Ok(())
}

/// Every check of [`verify`] but the library's hash, on the text of a `plugin.toml` read from
/// `path`: format, signature by a trusted publisher, ABI major and appliance version.
pub fn verify_manifest(
    path: &Path,
    text: &str,
    trusted: &TrustedPublishers,
    abi_major: u16,
    appliance_version: &str,
) -> Result<Manifest, ManifestError> {
    let m = Manifest::parse(path, text)?;
    let name = m.name.clone();
    let sig = m.signature.as_ref().ok_or_else(|| ManifestError::Unsigned { name: name.clone() })?;
    let key = trusted
        .key(&sig.publisher)
        .ok_or_else(|| ManifestError::UntrustedPublisher { name: name.clone(), publisher: sig.publisher.clone() })??;
    let raw = STANDARD.decode(&sig.ed25519).map_err(|_| ManifestError::BadSignature { name: name.clone() })?;
    let signature = Signature::from_slice(&raw).map_err(|_| ManifestError::BadSignature { name: name.clone() })?;
    key.verify(&m.signed_bytes(), &signature).map_err(|_| ManifestError::BadSignature { name: name.clone() })?;
    let major: Option<u16> = m.abi.split('.').next().and_then(|s| s.parse().ok());
    if major != Some(abi_major) {
        return Err(ManifestError::AbiMajor { name, found: m.abi.clone(), expected: abi_major });
    }
    if version_parts(&m.min_appliance) > version_parts(appliance_version) {
        return Err(ManifestError::TooNew { name, needed: m.min_appliance.clone(), running: appliance_version.into() });
    }
    Ok(m)
}
