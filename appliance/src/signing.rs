//! The signing service behind `api.sock`: authorises the caller (by the Unix uid the kernel
//! reported) against its grants, has the HSM sign or verify on the [`Executor`], and audits
//! every request before answering. If the audit row cannot be committed, no signature is
//! returned.
//!
//! It never sees key material and never logs or stores the data it signs (only its SHA-256).

use std::sync::Arc;

use countersign_hsm::{HashAlg, HsmError, KeyAlgorithm, KeyId, PublicKey, SignInput, SignScheme};
use sha2::{Digest, Sha256};

use crate::directory::{Directory, DirectoryHandle, KeyEntry};
use crate::executor::{Executor, ExecutorError};
use crate::store::{KeyState, SignatureAuditRow};

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
    pub signature: SignatureBytes,
}

/// A signature as the caller sent it. ECDSA signatures come as DER or as raw `r || s`; other
/// algorithms have one encoding (use `Raw`).
#[derive(Debug, Clone)]
pub enum SignatureBytes {
    Der(Vec<u8>),
    Raw(Vec<u8>),
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
    #[error("nothing was signed: {0}")]
    Audit(ExecutorError),
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
    directory: Arc<DirectoryHandle>,
    executor: Executor,
}

/// An authorised request, resolved to one key version and its parameters.
struct Plan {
    key_id: KeyId,
    algorithm: KeyAlgorithm,
    version: u32,
    scheme: SignScheme,
    hash: Option<HashAlg>,
}

impl SigningService {
    pub fn new(directory: Arc<DirectoryHandle>, executor: Executor) -> Self {
        SigningService { directory, executor }
    }

    /// The integration registered for `uid`, if any.
    pub fn integration_of(&self, uid: u32) -> Option<String> {
        self.directory.current().by_uid.get(&uid).map(|i| i.name.clone())
    }

    fn authorise(dir: &Directory, caller: CallerId, key: &str) -> Result<Arc<KeyEntry>, SigningError> {
        let integration = dir.by_uid.get(&caller.uid).ok_or(SigningError::NotRegistered(caller.uid))?;
        let entry = dir.keys.get(key).ok_or_else(|| SigningError::UnknownKey(key.to_owned()))?;
        if !integration.granted.contains(key) {
            return Err(SigningError::NotGranted { integration: integration.name.clone(), key: key.to_owned() });
        }
        Ok(Arc::clone(entry))
    }

    /// Authorises and resolves a request, recording what it resolved to in `row`.
    fn plan(
        dir: &Directory,
        caller: CallerId,
        key: &str,
        version: Option<u32>,
        scheme: Option<SignScheme>,
        hash: Option<HashAlg>,
        row: &mut SignatureAuditRow,
    ) -> Result<Plan, SigningError> {
        let entry = Self::authorise(dir, caller, key)?;
        let version = version.unwrap_or(entry.active);
        let v = entry
            .versions
            .get(&version)
            .ok_or_else(|| SigningError::UnknownVersion { key: key.to_owned(), version })?;
        let (scheme, hash) = choose(entry.algorithm, scheme, hash)?;
        row.key_version = Some(version);
        row.scheme = Some(scheme.to_string());
        row.hash = hash.map(|h| h.to_string());
        Ok(Plan { key_id: v.key_id.clone(), algorithm: entry.algorithm, version, scheme, hash })
    }

    /// The keys the caller may use.
    pub async fn list_keys(&self, caller: CallerId) -> Result<Vec<KeyView>, SigningError> {
        let dir = self.directory.current();
        let row = audit_row(&dir, caller, "list-keys", "*", None);
        let Some(integration) = dir.by_uid.get(&caller.uid) else {
            return self.refuse(row, SigningError::NotRegistered(caller.uid)).await;
        };
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
        drop(dir);
        self.executor.audit_only(row).await.map_err(SigningError::Audit)?;
        Ok(keys)
    }

    /// A granted key's public key, at `version` or the active one.
    pub async fn public_key(
        &self,
        caller: CallerId,
        key: &str,
        version: Option<u32>,
    ) -> Result<(u32, PublicKey), SigningError> {
        let dir = self.directory.current();
        let mut row = audit_row(&dir, caller, "public-key", key, None);
        let found = Self::authorise(&dir, caller, key).and_then(|entry| {
            let v = version.unwrap_or(entry.active);
            let e = entry
                .versions
                .get(&v)
                .ok_or_else(|| SigningError::UnknownVersion { key: key.to_owned(), version: v })?;
            Ok((v, e.public_key.clone()))
        });
        drop(dir);
        match found {
            Ok((v, pk)) => {
                row.key_version = Some(v);
                self.executor.audit_only(row).await.map_err(SigningError::Audit)?;
                Ok((v, pk))
            }
            Err(e) => self.refuse(row, e).await,
        }
    }

    /// Records a request refused before the HSM, then returns the refusal.
    async fn refuse<T>(&self, mut row: SignatureAuditRow, e: SigningError) -> Result<T, SigningError> {
        row.result = match e {
            SigningError::NotRegistered(_) | SigningError::NotGranted { .. } => "denied",
            _ => "error",
        }
        .into();
        row.detail = Some(e.to_string());
        self.executor.audit_only(row).await.map_err(SigningError::Audit)?;
        Err(e)
    }

    pub async fn sign(&self, caller: CallerId, req: SignRequest) -> Result<Signed, SigningError> {
        let dir = self.directory.current();
        let mut row = audit_row(&dir, caller, "sign", &req.key, Some(&req.input));
        let plan = match Self::plan(&dir, caller, &req.key, None, req.scheme, req.hash, &mut row) {
            Ok(p) => p,
            Err(e) => return self.refuse(row, e).await,
        };
        drop(dir);
        let (key, input) = (req.key, req.input);
        let (scheme, hash, version, algorithm) = (plan.scheme, plan.hash, plan.version, plan.algorithm);
        let (result, audit_id) = self
            .executor
            .run(row, move |hsm, row| {
                let r = hsm.sign(
                    &plan.key_id,
                    plan.algorithm,
                    plan.scheme,
                    plan.hash.unwrap_or(HashAlg::Sha256),
                    as_sign_input(&input),
                );
                outcome(row, r.as_ref().map(|_| "ok"));
                r
            })
            .await
            .map_err(SigningError::Audit)?;
        let signature = result?;
        Ok(Signed { key, version, algorithm, scheme, hash, signature, audit_id })
    }

    /// Verifies a signature; `Ok(false)` for a signature that does not match.
    pub async fn verify(&self, caller: CallerId, req: VerifyRequest) -> Result<(u32, bool), SigningError> {
        let dir = self.directory.current();
        let mut row = audit_row(&dir, caller, "verify", &req.key, Some(&req.input));
        let plan = match Self::plan(&dir, caller, &req.key, req.version, req.scheme, req.hash, &mut row) {
            Ok(p) => p,
            Err(e) => return self.refuse(row, e).await,
        };
        drop(dir);
        let (input, version) = (req.input, plan.version);
        // A DER ECDSA signature becomes r || s here, where the key's curve is known; one that
        // does not decode is simply not valid (and audited as such).
        let signature = match (req.signature, plan.algorithm.ec_scalar_len()) {
            (SignatureBytes::Der(der), Some(n)) => countersign_pki::ecdsa_der_to_raw(&der, n).ok(),
            (SignatureBytes::Der(b) | SignatureBytes::Raw(b), _) => Some(b),
        };
        let (result, _) = self
            .executor
            .run(row, move |hsm, row| {
                let r = match &signature {
                    Some(sig) => hsm.verify(
                        &plan.key_id,
                        plan.algorithm,
                        plan.scheme,
                        plan.hash.unwrap_or(HashAlg::Sha256),
                        as_sign_input(&input),
                        sig,
                    ),
                    None => Ok(false),
                };
                outcome(row, r.as_ref().map(|valid| if *valid { "ok" } else { "invalid" }));
                r
            })
            .await
            .map_err(SigningError::Audit)?;
        Ok((version, result?))
    }
}

/// Completes an audit row with the HSM's verdict.
fn outcome(row: &mut SignatureAuditRow, r: Result<&'static str, &HsmError>) {
    match r {
        Ok(result) => row.result = result.into(),
        Err(e) => {
            row.result = "error".into();
            row.detail = Some(e.to_string());
        }
    }
}

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
    input: Option<&Input>,
) -> SignatureAuditRow {
    let (digest, kind) = match input {
        Some(Input::Message(m)) => (Some(Sha256::digest(m).to_vec()), Some("message".into())),
        Some(Input::Digest(d)) => (Some(Sha256::digest(d).to_vec()), Some("digest".into())),
        None => (None, None),
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
        input_kind: kind,
        input_sha256: digest,
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
        return Err(SigningError::Unsupported(format!("a key of type {alg} cannot make {scheme} signatures")));
    }
    if scheme == SignScheme::Ed25519 {
        if hash.is_some() {
            return Err(SigningError::Unsupported("Ed25519 signatures take no hash parameter".into()));
        }
        return Ok((scheme, None));
    }
    Ok((scheme, Some(hash.unwrap_or_else(|| alg.default_hash()))))
}
