//! The error the token, gateway and challenge services share, and how they run blocking work
//! (store, HSM, plugin calls) off the async runtime. Kept apart from those services so that
//! each can use it without depending on the others.

use countersign_store::StoreError;

/// What went wrong in a token, gateway or challenge service.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0} does not exist")]
    NotFound(String),
    #[error("{0} already exists")]
    Duplicate(String),
    /// A resync's two OTPs are not consecutive codes of the token within the sync window.
    #[error("{0}")]
    OutOfSync(String),
    /// The token is revoked: nothing may use or revive it.
    #[error("{0}")]
    Revoked(String),
    /// The action needs a token with an owner (a lost token's replacement goes to its owner).
    #[error("{0}")]
    Unassigned(String),
    #[error("HSM: {0}")]
    Hsm(#[from] countersign_hsm::HsmError),
    #[error("store: {0}")]
    Store(StoreError),
    #[error("{0}")]
    Plugin(String),
    #[error("internal: {0}")]
    Internal(String),
}

impl From<StoreError> for TokenError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => TokenError::NotFound(m),
            StoreError::Duplicate(m) => TokenError::Duplicate(m),
            StoreError::Invalid(m) => TokenError::Invalid(m),
            StoreError::Revoked(m) => TokenError::Revoked(m),
            other => TokenError::Store(other),
        }
    }
}

/// Runs blocking store, HSM or plugin work off the async runtime.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, TokenError> + Send + 'static,
) -> Result<T, TokenError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| TokenError::Internal(e.to_string()))?
}
