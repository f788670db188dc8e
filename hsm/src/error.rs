//! Typed errors of the HSM layer. Messages name the problem and what to do; they never carry
//! PINs, key material or the data being processed.

use cryptoki::error::{Error as CkError, RvError};

/// What can go wrong talking to the token.
#[derive(Debug, thiserror::Error)]
pub enum HsmError {
    /// The PKCS#11 library could not be loaded.
    #[error("cannot load PKCS#11 module {path}: {reason} (check hsm.module in the configuration and that the library is installed)")]
    ModuleLoad {
        /// The module's path, as configured.
        path: String,
        /// Why loading failed, as the dynamic loader said.
        reason: String,
    },
    /// `C_Initialize` failed (at open, or when a recovery initialises the module again); holds
    /// the module's error.
    #[error("PKCS#11 module initialisation failed: {0}")]
    Initialize(String),
    /// No slot holds an initialised token with the configured label or serial; holds the
    /// selector as written by [`TokenSelector`](crate::TokenSelector)'s `Display`.
    #[error("no initialised token matches {0} (check hsm.token_label / hsm.token_serial and SOFTHSM2_CONF)")]
    TokenNotFound(String),
    /// The token refused the user PIN (`CKR_PIN_INCORRECT`); holds the token selector, never
    /// the PIN.
    #[error("HSM login failed: the user PIN was rejected by token {0} (check the PIN file)")]
    PinIncorrect(String),
    /// The token's user PIN is locked (`CKR_PIN_LOCKED`); holds the token selector, never the
    /// PIN.
    #[error("HSM login failed: the user PIN of token {0} is locked; unlock it with the SO PIN")]
    PinLocked(String),
    /// The PIN file could not be used.
    #[error("cannot read the HSM PIN from {path}: {reason}")]
    PinSource {
        /// The PIN file's path.
        path: String,
        /// Why it was refused: an I/O error, permissions open to group or others, or an empty
        /// file. Never any of the file's contents.
        reason: String,
    },
    /// No object with this CKA_ID and the needed class is on a token that otherwise answers;
    /// holds the key id as hex.
    #[error("key {0} is not on the token")]
    KeyNotFound(String),
    /// An algorithm, scheme or combination the appliance does not offer (for example an
    /// Ed25519 key asked for a digest); holds the whole message.
    #[error("{0}")]
    Unsupported(String),
    /// The caller's input is unusable (a digest of the wrong length, empty associated data, a
    /// malformed key id, ...); holds what is wrong, never data to sign, seal or open.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A sealed blob does not open: wrong key or associated data, a tampered or truncated blob,
    /// or an unknown format version. It is never worth retrying.
    #[error("AES-GCM open failed: the ciphertext or its associated data does not match")]
    OpenFailed,
    /// A public key could not be read from the token, encoded, or parsed from DER; holds the
    /// reason.
    #[error("public key encoding failed: {0}")]
    Encoding(String),
    /// The token does not answer: a session, device or token error persisted through one
    /// recovery, or the recovery itself failed. Callers fail closed.
    #[error("the HSM is not available ({op} failed with {rv:?} after re-opening sessions and retrying once); try again later")]
    Unavailable {
        /// The operation, named by its PKCS#11 function (`C_Sign`, ...); the call that failed
        /// may be a step of it, such as opening its session or finding its key.
        op: &'static str,
        /// The return code of the last failure.
        rv: RvError,
    },
    /// Any other failure of a PKCS#11 call.
    #[error("HSM operation {op} failed: {detail}")]
    Operation {
        /// The operation, named by its PKCS#11 function (`C_Sign`, `C_Login`, ...); the call
        /// that failed may be a step of it, such as opening its session or finding its key.
        op: &'static str,
        /// The return code's name, the library's error, or what this crate found wrong (several
        /// objects sharing one CKA_ID). Never key material or processed data.
        detail: String,
    },
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
