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
    /// The peer's Unix uid, which names its integration.
    pub uid: u32,
    /// The peer's process id, when the kernel reported one (recorded in the audit).
    pub pid: Option<i32>,
}

/// The data to sign or verify. Only its SHA-256 is ever recorded.
#[derive(Debug, Clone)]
pub enum Input {
    /// The message itself: hashed here with the request's hash (Ed25519 signs it as it is).
    Message(Vec<u8>),
    /// The caller's digest of the message under the request's hash, of that hash's length
    /// (not for Ed25519).
    Digest(Vec<u8>),
}

/// A request to sign with an application's active key version.
#[derive(Debug, Clone)]
pub struct SignRequest {
    /// The application whose key signs.
    pub key: String,
    /// What to sign.
    pub input: Input,
    /// The hash; `None`: the key's default (Ed25519 takes none).
    pub hash: Option<HashAlg>,
    /// The scheme; `None`: the key's default.
    pub scheme: Option<SignScheme>,
}

/// A request to verify a signature with one of an application's key versions.
#[derive(Debug, Clone)]
pub struct VerifyRequest {
    /// The application whose key verifies.
    pub key: String,
    /// The key version; `None`: the active one.
    pub version: Option<u32>,
    /// What was signed.
    pub input: Input,
    /// The hash; `None`: the key's default (Ed25519 takes none).
    pub hash: Option<HashAlg>,
    /// The scheme; `None`: the key's default.
    pub scheme: Option<SignScheme>,
    /// The signature to check.
    pub signature: SignatureBytes,
}

/// A signature as the caller sent it. ECDSA signatures come as DER or as raw `r || s`; other
/// algorithms have one encoding (use `Raw`).
#[derive(Debug, Clone)]
pub enum SignatureBytes {
    /// An ECDSA signature in DER; one that does not decode is simply not valid.
    Der(Vec<u8>),
    /// Raw `r || s` for ECDSA; the one encoding of other algorithms.
    Raw(Vec<u8>),
}

/// A signature made, and what made it.
#[derive(Debug, Clone)]
pub struct Signed {
    /// The application whose key signed.
    pub key: String,
    /// The key version that signed (the active one).
    pub version: u32,
    /// The key's algorithm.
    pub algorithm: KeyAlgorithm,
    /// The scheme used.
    pub scheme: SignScheme,
    /// The hash used; `None` for Ed25519.
    pub hash: Option<HashAlg>,
    /// ECDSA signatures are raw `r || s`.
    pub signature: Vec<u8>,
    /// The id of the request's signature audit row, committed before this was returned.
    pub audit_id: i64,
}

/// A key the caller may use, as `list_keys` shows it.
#[derive(Debug, Clone)]
pub struct KeyView {
    /// The application's name.
    pub name: String,
    /// The key's algorithm.
    pub algorithm: KeyAlgorithm,
    /// The version that signs; 0 when none is active.
    pub active_version: u32,
    /// Every version and whether it is active or retired, in version order.
    pub versions: Vec<(u32, KeyState)>,
}

/// Why a signing request was refused or failed. Each is recorded in the signature audit, but
/// for `Audit`, whose row could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// The caller's uid is not registered as an integration.
    #[error("uid {0} is not registered as an integration; ask an admin to run `countersign integration add`")]
    NotRegistered(u32),
    /// The caller's integration may not use this key.
    #[error("integration '{integration}' is not granted key '{key}'")]
    NotGranted {
        /// The caller's integration.
        integration: String,
        /// The key it asked for.
        key: String,
    },
    /// No application key of that name.
    #[error("no key named '{0}'")]
    UnknownKey(String),
    /// The key has no such version.
    #[error("key '{key}' has no version {version}")]
    UnknownVersion {
        /// The key asked for.
        key: String,
        /// The version asked for.
        version: u32,
    },
    /// The key cannot do what was asked (a scheme of another algorithm, a hash or a digest
    /// for Ed25519).
    #[error("{0}")]
    Unsupported(String),
    /// The input is not acceptable (a digest of the wrong length).
    #[error("{0}")]
    Invalid(String),
    /// The HSM failed; nothing was signed or verified.
    #[error("the HSM could not complete the request: {0}")]
    Hsm(HsmError),
    /// The request's audit row could not be committed (or the request was lost): no
    /// signature or verdict is returned.
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

/// Signing and verification for integrations on `api.sock`, authorised from the directory
/// snapshot and run on the executor. Cheap to clone.
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
    /// The service over the signing directory and the executor.
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

    /// Signs with the active version of a key the caller's integration is granted; returns
    /// only once the audit row is committed.
    pub async fn sign(&self, caller: CallerId, req: SignRequest) -> Result<Signed, SigningError> {
        let dir = self.directory.current();
        let mut row = audit_row(&dir, caller, "sign", &req.key, Some(&req.input));
        let plan = match Self::plan(&dir, caller, &req.key, None, req.scheme, req.hash, &mut row) {
            Ok(p) => p,
            Err(e) => return self.refuse(row, e).await,
        };
        drop((dir, plan));
        let (key, input) = (req.key, req.input);
        let directory = self.directory.clone();
        let (name, asked_scheme, asked_hash) = (key.clone(), req.scheme, req.hash);
        let (result, audit_id) = self
            .executor
            .run(row, move |hsm, row| {
                // Judged again on the worker, just before the HSM: a grant revoked or a version
                // rotated out while the request waited in the queue is not honoured once the
                // admin saw the change done (the directory reloads before an admin change is
                // acknowledged); a rotation signs with the version active now.
                let plan = match Self::plan(&directory.current(), caller, &name, None, asked_scheme, asked_hash, row) {
                    Ok(p) => p,
                    Err(e) => {
                        row.result = match e {
                            SigningError::NotRegistered(_) | SigningError::NotGranted { .. } => "denied",
                            _ => "error",
                        }
                        .into();
                        row.detail = Some(format!("{e} (changed while the request waited)"));
                        return Err(e);
                    }
                };
                let r = hsm.sign(
                    &plan.key_id,
                    plan.algorithm,
                    plan.scheme,
                    plan.hash.unwrap_or(HashAlg::Sha256),
                    as_sign_input(&input),
                );
                outcome(row, r.as_ref().map(|_| "ok"));
                r.map(|signature| (signature, plan.version, plan.algorithm, plan.scheme, plan.hash))
                    .map_err(SigningError::from)
            })
            .await
            .map_err(SigningError::Audit)?;
        let (signature, version, algorithm, scheme, hash) = result?;
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
