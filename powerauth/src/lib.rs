//! The PowerAuth 3.x cryptographic core of Countersign's PowerAuth server side (issue 19).
//!
//! Pure functions over bytes, which the appliance calls with keys the HSM has just unsealed:
//!
//! - [`keys`]: the secret-key type, `KDF` (AES, by index) and `KDF_INTERNAL` (HMAC-SHA256,
//!   by bytes), the ECDH master secret of an activation and the keys derived from it
//!   (signature possession, knowledge and biometry, transport, vault encryption).
//! - [`signature`]: the hash-based counter `CTR_DATA`, the expected PowerAuth signature for 1, 2
//!   or 3 factors in the decimal (3.0, offline) and Base64 (3.1+) formats, its constant-time
//!   verification, and the look-ahead window that says which counter step matched.
//! - [`fingerprint`]: the activation fingerprint the user compares on both screens.
//! - [`status`]: the encrypted activation status blob (its IV, its fields, the counter hash).
//! - [`activation_code`]: activation codes (10 random bytes and a CRC-16, Base32
//!   `XXXXX-XXXXX-XXXXX-XXXXX`), read canonically, and the master key's signature over them.
//! - [`ecies`]: PowerAuth's ECIES for protocol 3.0–3.3 in application and activation scope.
//! - [`jwt`]: the 3.3 temporary keys' request (`HS256` under a 16-byte key) and answer (`ES256`).
//! - [`token`]: MAC tokens: the `X-PowerAuth-Token` header and the token digest (3.0/3.1 and
//!   3.2+ forms), compared in constant time.
//! - [`wire`]: the `X-PowerAuth-*` headers, read by key, and the normalized data a signature
//!   covers.
//!
//! What it must never do: I/O of any kind, read a clock or draw random bytes (the caller passes
//! nonces, timestamps and random bytes in, so every function is reproducible from the published
//! vectors), keep a key beyond a call (keys live sealed in the store and in the HSM; here they
//! are borrowed `Zeroizing` values whose Debug prints `***`), talk to the HSM or the store, or
//! compare a secret-dependent value other than in constant time. Deciding what a match means
//! (counter compare-and-set, failure counts, blocking, replay tables) is the appliance's job.
//!
//! Where the published documentation and the published test vectors differ, this crate follows
//! the vectors (`tests/vectors/`), and says so next to the code: the KDF index sits in the last 8
//! bytes of the AES block, decimal signatures and fingerprints take the *last* 4 bytes of the
//! HMAC, fingerprints hash X coordinates without leading zero bytes, and from protocol 3.2 the
//! ECIES KDF info starts with the version string.

#![warn(missing_docs, unreachable_pub)]

pub mod activation_code;
pub mod ecies;
mod error;
pub mod fingerprint;
pub mod jwt;
pub mod keys;
pub mod signature;
pub mod status;
pub mod token;
mod version;
pub mod wire;

pub use error::Error;
pub use version::ProtocolVersion;
