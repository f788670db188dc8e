//! The error the token, gateway and challenge services share, and how they run blocking work
//! (store, HSM, plugin calls) off the async runtime. Kept apart from those services so that
//! each can use it without depending on the others.

use countersign_core::error::Refusal;
use countersign_store::StoreError;

/// What went wrong in a token, gateway or challenge service.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The request is not acceptable, or names a token, user, gateway or other thing that does
    /// not exist or exists already.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// A resync's two OTPs are not consecutive codes of the token within the sync window.
    #[error("{0}")]
    OutOfSync(String),
    /// The token is revoked: nothing may use or revive it.
    #[error("{0}")]
    Revoked(String),
    /// The action needs a token with an owner (a lost token's replacement goes to its owner).
    #[error("{0}")]
    Unassigned(String),
    /// The HSM failed (sealing, opening, a verifier, random bytes).
    #[error("HSM: {0}")]
    Hsm(#[from] countersign_hsm::HsmError),
    /// The store failed for a reason the request cannot fix.
    #[error("store: {0}")]
    Store(StoreError),
    /// A plugin call failed or answered something unexpected.
    #[error("{0}")]
    Plugin(String),
    /// An internal step failed (a blocking task, an encoding).
    #[error("internal: {0}")]
    Internal(String),
}

impl From<StoreError> for TokenError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Refused(r) => TokenError::Refused(r),
            StoreError::Revoked(m) => TokenError::Revoked(m),
            other => TokenError::Store(other),
        }
    }
}

/// Runs blocking store, HSM or plugin work off the async runtime.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, TokenError> + Send + 'static,
) -> Result<T, TokenError> {
    off_runtime(f, TokenError::Internal).await
}

/// Runs `f` on a blocking thread; a task that could not finish (it panicked, or the runtime is
/// shutting down) becomes `internal`'s error. Every service's blocking work goes through here,
/// each with its own error type.
pub(crate) async fn off_runtime<T: Send + 'static, E: Send + 'static>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
    internal: fn(String) -> E,
) -> Result<T, E> {
    tokio::task::spawn_blocking(f).await.map_err(|e| internal(e.to_string()))?
}

/// A service whose blocking work runs off the runtime with the service itself at hand: `f`
/// gets a clone of it on the blocking thread. One definition for the services that each had the
/// same wrapper with their own error type.
pub(crate) trait OffRuntime: Clone + Send + Sync + 'static {
    /// The service's error.
    type Error: Send + 'static;

    /// The service's error for a blocking task that could not finish.
    fn internal(message: String) -> Self::Error;

    /// Runs `f` with the service on a blocking thread.
    fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Self) -> Result<T, Self::Error> + Send + 'static,
    ) -> impl std::future::Future<Output = Result<T, Self::Error>> + Send {
        let me = self.clone();
        off_runtime(move || f(&me), Self::internal)
    }
}
