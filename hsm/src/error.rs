//! Typed errors of the HSM layer. Messages name the problem and what to do; they never carry
//! PINs, key material or the data being processed.

use cryptoki::error::{Error as CkError, RvError};

/// What can go wrong talking to the token.
#[derive(Debug, thiserror::Error)]
pub enum HsmError {
    #[error("cannot load PKCS#11 module {path}: {reason} (check hsm.module in the configuration and that the library is installed)")]
    ModuleLoad { path: String, reason: String },
    #[error("PKCS#11 module initialisation failed: {0}")]
    Initialize(String),
    #[error("no initialised token matches {0} (check hsm.token_label / hsm.token_serial and SOFTHSM2_CONF)")]
    TokenNotFound(String),
    #[error("HSM login failed: the user PIN was rejected by token {0} (check the PIN file)")]
    PinIncorrect(String),
    #[error("HSM login failed: the user PIN of token {0} is locked; unlock it with the SO PIN")]
    PinLocked(String),
    #[error("cannot read the HSM PIN from {path}: {reason}")]
    PinSource { path: String, reason: String },
    #[error("key {0} is not on the token")]
    KeyNotFound(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("AES-GCM open failed: the ciphertext or its associated data does not match")]
    OpenFailed,
    #[error("public key encoding failed: {0}")]
    Encoding(String),
    #[error("the HSM is not available ({op} failed with {rv:?} after re-opening sessions and retrying once); try again later")]
    Unavailable { op: &'static str, rv: RvError },
    #[error("HSM operation {op} failed: {detail}")]
    Operation { op: &'static str, detail: String },
}

impl From<countersign_core::keys::UnknownName> for HsmError {
    fn from(e: countersign_core::keys::UnknownName) -> Self {
        HsmError::Unsupported(e.to_string())
    }
}

impl From<countersign_core::keys::BadKeyId> for HsmError {
    fn from(e: countersign_core::keys::BadKeyId) -> Self {
        HsmError::InvalidInput(e.to_string())
    }
}

impl HsmError {
    pub(crate) fn op(op: &'static str, e: CkError) -> Self {
        let detail = match &e {
            CkError::Pkcs11(rv, _) => format!("{rv:?}"),
            other => other.to_string(),
        };
        HsmError::Operation { op, detail }
    }
}

/// The return codes after which the session pool is rebuilt and the call retried once.
pub(crate) fn needs_recovery(e: &CkError) -> bool {
    matches!(
        e,
        CkError::Pkcs11(
            RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::DeviceError
                | RvError::DeviceRemoved
                | RvError::TokenNotPresent
                | RvError::UserNotLoggedIn
                | RvError::CryptokiNotInitialized,
            _
        )
    )
}

/// A cached object handle no longer names an object (the object was deleted or the token
/// re-read): find it again, but the token itself is fine.
pub(crate) fn stale_handle(e: &CkError) -> bool {
    matches!(e, CkError::Pkcs11(RvError::ObjectHandleInvalid | RvError::KeyHandleInvalid, _))
}

pub(crate) fn rv_of(e: &CkError) -> Option<RvError> {
    match e {
        CkError::Pkcs11(rv, _) => Some(*rv),
        _ => None,
    }
}

/// The kind of an HSM failure: unavailable while the token does not answer, the caller's input
/// or an unsupported algorithm, else the appliance's fault (a key missing on the token, a failed
/// operation, a PIN the token refuses).
impl countersign_core::error::Kinded for HsmError {
    fn kind(&self) -> countersign_core::error::ErrorKind {
        use countersign_core::error::{Dependency, ErrorKind};
        match self {
            HsmError::Unavailable { .. } => ErrorKind::Unavailable(Dependency::Hsm),
            HsmError::Unsupported(_) => ErrorKind::Unsupported,
            HsmError::InvalidInput(_) => ErrorKind::Invalid,
            _ => ErrorKind::Internal,
        }
    }

    /// A key missing on the token and any other internal HSM failure keep codes of their own;
    /// the caller's input is named as the HSM named it, without the "invalid input" prefix.
    fn reason(&self) -> Option<countersign_core::error::Reason> {
        use countersign_core::error::{ErrorKind, Reason};
        match self {
            HsmError::KeyNotFound(_) => Some(Reason { code: Some("key_missing_on_token"), message: self.to_string() }),
            HsmError::Unsupported(m) | HsmError::InvalidInput(m) => Some(Reason { code: None, message: m.clone() }),
            _ if self.kind() == ErrorKind::Internal => {
                Some(Reason { code: Some("hsm_error"), message: self.to_string() })
            }
            _ => None,
        }
    }
}
