//! The signing service behind `api.sock`: authorises the caller (by the Unix uid the kernel
//! reported) against its grants, has the HSM sign or verify, and audits every request before
//! answering. If the audit row cannot be committed, no signature is returned.
//!
//! It never sees key material and never logs or stores the data it signs (only its SHA-256).

use std::sync::Arc;

use countersign_hsm::{HashAlg, Hsm, HsmError, KeyAlgorithm, PublicKey, SignInput, SignScheme};
use sha2::{Digest, Sha256};

use crate::directory::{Directory, DirectoryHandle, KeyEntry};
use crate::store::{AuditWriter, KeyState, SignatureAuditRow, StoreError};

/// Who is asking, as the kernel reported it for the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallerId {
    pub uid: u32,
    pub pid: Option<i32>,
}

/// The data to sign or verify.
#[derive(Debug, Clone)]
pub enum Input {
    Message(Vec<u8>),
    Digest(Vec<u8>),
}

#[derive(Debug, Clone)]
pub struct SignRequest {
    pub key: String,
    pub input: Input,
    pub hash: Option<HashAlg>,
    pub scheme: Option<SignScheme>,
}

#[derive(Debug, Clone)]
pub struct VerifyRequest {
    pub key: String,
    pub version: Option<u32>,
    pub input: Input,
    pub hash: Option<HashAlg>,
    pub scheme: Option<SignScheme>,
    /// ECDSA signatures raw `r || s`.
    pub signature: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct Signed {
    pub key: String,
    pub version: u32,
    pub algorithm: KeyAlgorithm,
    pub scheme: SignScheme,
    pub hash: Option<HashAlg>,
    /// ECDSA signatures are raw `r || s`.
    pub signature: Vec<u8>,
    pub audit_id: i64,
}

#[derive(Debug, Clone)]
pub struct KeyView {
    pub name: String,
    pub algorithm: KeyAlgorithm,
    pub active_version: u32,
    pub versions: Vec<(u32, KeyState)>,
}

#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("uid {0} is not registered as an integration; ask an admin to run `countersign integration add`")]
    NotRegistered(u32),
    #[error("integration '{integration}' is not granted key '{key}'")]
    NotGranted { integration: String, key: String },
    #[error("no key named '{0}'")]
    UnknownKey(String),
    #[error("key '{key}' has no version {version}")]
    UnknownVersion { key: String, version: u32 },
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the HSM could not complete the request: {0}")]
    Hsm(HsmError),
    #[error("the audit could not be written, so nothing was signed: {0}")]
    Audit(StoreError),
}

impl From<HsmError> for SigningError {
    fn from(e: HsmError) -> Self {
        match e {
            HsmError::Unsupported(m) => SigningError::Unsupported(m),
            HsmError::InvalidInput(m) => SigningError::Invalid(m),
            other => SigningError::Hsm(other),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SigningService {
    hsm: Hsm,
    directory: Arc<DirectoryHandle>,
    audit: AuditWriter,
}

/// What an authorised request resolved to.
struct Resolved {
    key: Arc<KeyEntry>,
}

impl SigningService {
    pub fn new(hsm: Hsm, directory: Arc<DirectoryHandle>, audit: AuditWriter) -> Self {
        SigningService {
            hsm,
            directory,
            audit,
        }
    }

    fn authorise(dir: &Directory, caller: CallerId, key: &str) -> Result<Resolved, SigningError> {
        let integration = dir
            .by_uid
            .get(&caller.uid)
            .ok_or(SigningError::NotRegistered(caller.uid))?;
        let entry = dir
            .keys
            .get(key)
            .ok_or_else(|| SigningError::UnknownKey(key.to_owned()))?;
        if !integration.granted.contains(key) {
            return Err(SigningError::NotGranted {
                integration: integration.name.clone(),
                key: key.to_owned(),
            });
        }
        Ok(Resolved {
            key: Arc::clone(entry),
        })
    }

    /// The keys the caller may use.
    pub fn list_keys(&self, caller: CallerId) -> Result<Vec<KeyView>, SigningError> {
        let dir = self.directory.current();
        let integration = dir
            .by_uid
            .get(&caller.uid)
            .ok_or(SigningError::NotRegistered(caller.uid))?;
        let mut keys: Vec<KeyView> = integration
            .granted
            .iter()
            .filter_map(|name| dir.keys.get(name))
            .map(|k| KeyView {
                name: k.name.clone(),
                algorithm: k.algorithm,
                active_version: k.active,
                versions: k.versions.iter().map(|(v, e)| (*v, e.state)).collect(),
            })
            .collect();
        keys.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(keys)
    }

    /// A granted key's public key, at `version` or the active one.
    pub fn public_key(
        &self,
        caller: CallerId,
        key: &str,
        version: Option<u32>,
    ) -> Result<(u32, PublicKey), SigningError> {
        let r = Self::authorise(&self.directory.current(), caller, key)?;
        let v = version.unwrap_or(r.key.active);
        let entry = r
            .key
            .versions
            .get(&v)
            .ok_or_else(|| SigningError::UnknownVersion {
                key: key.to_owned(),
                version: v,
            })?;
        Ok((v, entry.public_key.clone()))
    }

    pub async fn sign(&self, caller: CallerId, req: SignRequest) -> Result<Signed, SigningError> {
        let mut row = audit_row(
            &self.directory.current(),
            caller,
            "sign",
            &req.key,
            &req.input,
        );
        let result = self.sign_authorised(caller, &req, &mut row).await;
        self.finish(row, result).await
    }

    async fn sign_authorised(
        &self,
        caller: CallerId,
        req: &SignRequest,
        row: &mut SignatureAuditRow,
    ) -> Result<Signed, SigningError> {
        let r = Self::authorise(&self.directory.current(), caller, &req.key)?;
        let version = r.key.active;
        let entry = r
            .key
            .versions
            .get(&version)
            .ok_or_else(|| SigningError::UnknownVersion {
                key: req.key.clone(),
                version,
            })?;
        let (scheme, hash) = choose(r.key.algorithm, req.scheme, req.hash)?;
        row.key_version = Some(version);
        row.scheme = Some(scheme.to_string());
        row.hash = hash.map(|h| h.to_string());
        let hsm = self.hsm.clone();
        let key_id = entry.key_id.clone();
        let alg = r.key.algorithm;
        let input = req.input.clone();
        let signature = tokio::task::spawn_blocking(move || {
            hsm.sign(
                &key_id,
                alg,
                scheme,
                hash.unwrap_or(HashAlg::Sha256),
                as_sign_input(&input),
            )
        })
        .await
        .map_err(|e| SigningError::Invalid(format!("signing task failed: {e}")))??;
        Ok(Signed {
            key: req.key.clone(),
            version,
            algorithm: alg,
            scheme,
            hash,
            signature,
            audit_id: 0,
        })
    }

    /// Verifies a signature; `Ok(false)` for a signature that does not match.
    pub async fn verify(
        &self,
        caller: CallerId,
        req: VerifyRequest,
    ) -> Result<(u32, bool), SigningError> {
        let mut row = audit_row(
            &self.directory.current(),
            caller,
            "verify",
            &req.key,
            &req.input,
        );
        let result = self.verify_authorised(caller, &req, &mut row).await;
        if let Ok((_, false)) = result {
            row.result = "invalid".into();
        }
        self.finish(row, result).await
    }

    async fn verify_authorised(
        &self,
        caller: CallerId,
        req: &VerifyRequest,
        row: &mut SignatureAuditRow,
    ) -> Result<(u32, bool), SigningError> {
        let r = Self::authorise(&self.directory.current(), caller, &req.key)?;
        let version = req.version.unwrap_or(r.key.active);
        let entry = r
            .key
            .versions
            .get(&version)
            .ok_or_else(|| SigningError::UnknownVersion {
                key: req.key.clone(),
                version,
            })?;
        let (scheme, hash) = choose(r.key.algorithm, req.scheme, req.hash)?;
        row.key_version = Some(version);
        row.scheme = Some(scheme.to_string());
        row.hash = hash.map(|h| h.to_string());
        let hsm = self.hsm.clone();
        let key_id = entry.key_id.clone();
        let alg = r.key.algorithm;
        let input = req.input.clone();
        let signature = req.signature.clone();
        let valid = tokio::task::spawn_blocking(move || {
            hsm.verify(
                &key_id,
                alg,
                scheme,
                hash.unwrap_or(HashAlg::Sha256),
                as_sign_input(&input),
                &signature,
            )
        })
        .await
        .map_err(|e| SigningError::Invalid(format!("verification task failed: {e}")))??;
        Ok((version, valid))
    }

    /// Writes the audit row for `result` and returns the result, unless the audit failed.
    async fn finish<T: AuditId>(
        &self,
        mut row: SignatureAuditRow,
        result: Result<T, SigningError>,
    ) -> Result<T, SigningError> {
        if let Err(e) = &result {
            row.result = match e {
                SigningError::NotRegistered(_) | SigningError::NotGranted { .. } => "denied",
                _ => "error",
            }
            .into();
            row.detail = Some(e.to_string());
        }
        let id = self.audit.record(row).await.map_err(SigningError::Audit)?;
        result.map(|mut v| {
            v.set_audit_id(id);
            v
        })
    }
}

trait AuditId {
    fn set_audit_id(&mut self, _id: i64) {}
}
impl AuditId for Signed {
    fn set_audit_id(&mut self, id: i64) {
        self.audit_id = id;
    }
}
impl AuditId for (u32, bool) {}

fn as_sign_input(i: &Input) -> SignInput<'_> {
    match i {
        Input::Message(m) => SignInput::Message(m),
        Input::Digest(d) => SignInput::Digest(d),
    }
}

fn audit_row(
    dir: &Directory,
    caller: CallerId,
    operation: &str,
    key: &str,
    input: &Input,
) -> SignatureAuditRow {
    let data = match input {
        Input::Message(m) | Input::Digest(m) => m,
    };
    SignatureAuditRow {
        id: 0,
        at_ms: crate::now_ms(),
        uid: caller.uid,
        pid: caller.pid,
        integration: dir.by_uid.get(&caller.uid).map(|i| i.name.clone()),
        operation: operation.into(),
        key_name: key.into(),
        key_version: None,
        scheme: None,
        hash: None,
        input_sha256: Some(hex::encode(Sha256::digest(data))),
        result: "ok".into(),
        detail: None,
    }
}

/// Picks the scheme and hash for a key: the caller's choice if the key allows it, else the
/// key's defaults. Ed25519 has no separate hash.
fn choose(
    alg: KeyAlgorithm,
    scheme: Option<SignScheme>,
    hash: Option<HashAlg>,
) -> Result<(SignScheme, Option<HashAlg>), SigningError> {
    let scheme = scheme.unwrap_or_else(|| alg.default_scheme());
    if !alg.allows(scheme) {
        return Err(SigningError::Unsupported(format!(
            "a {alg} key cannot make {scheme} signatures"
        )));
    }
    if scheme == SignScheme::Ed25519 {
        if hash.is_some() {
            return Err(SigningError::Unsupported(
                "Ed25519 signatures take no hash parameter".into(),
            ));
        }
        return Ok((scheme, None));
    }
    Ok((scheme, Some(hash.unwrap_or_else(|| alg.default_hash()))))
}
