//! Countersign's HSM boundary: the only crate that links `cryptoki`.
//!
//! It owns the PKCS#11 module context, the logged-in session pool and its recovery, the
//! templates that make every private or secret key sensitive and non-extractable, and the
//! operations the appliance needs (key generation, signing, verification, AES-GCM sealing,
//! HMAC, random). Callers name keys by the [`KeyId`] recorded in their own store; object
//! handles never leave this crate.
//!
//! It must never hand out key material, a raw session or an object handle, and never log a
//! PIN or any data it signs, seals or opens.

#![warn(missing_docs, unreachable_pub)]

mod agreement;
mod algorithms;
mod error;
mod keys;
mod metrics;
mod pin;
mod pool;
mod pubkey;
mod signature;
mod symmetric;
mod token;

pub use algorithms::{HashAlg, KeyAlgorithm, SignScheme};
pub use error::HsmError;
pub use keys::{GeneratedKeyPair, KeyId, KeyUse, SecretKeyKind};
pub use metrics::{Histogram, HistogramSnapshot, HsmMetricsSnapshot, LATENCY_BUCKETS_US};
pub use pin::Pin;
pub use pubkey::PublicKey;
pub use signature::SignInput;
pub use token::{Health, Hsm, HsmConfig, TokenSelector};

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, HsmError>;
