//! The daemon's health as `GET /v1/health` answers it (200 when healthy, 503 when degraded,
//! the same body either way).

use serde::{Deserialize, Serialize};

/// `GET /v1/health`: whether the process, the HSM and the store answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Health {
    /// `ok`, or `degraded` when the HSM or the store does not answer.
    pub status: String,
    /// The daemon's version.
    pub version: String,
    /// The HSM connection.
    pub hsm: HsmHealth,
    /// The store's probe.
    pub store: StoreHealth,
    /// What the process is protected by (not dumpable, no core files), as the daemon's process
    /// crate reports it; kept as JSON here because that crate does I/O and this one may not
    /// link it.
    pub process: serde_json::Value,
}

/// The HSM connection as the health answer shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HsmHealth {
    /// Whether the token answered a probe within the timeout, with no session, device or token
    /// error since the last successful operation.
    pub ok: bool,
    /// The token selector in words (`label '...'` or `serial '...'`).
    pub token: String,
    /// Recoveries (sessions re-opened, login repeated) since the token was opened.
    pub recoveries: u64,
    /// Why the token last failed; `None` while it is healthy. Never a PIN or processed data.
    pub last_error: Option<String>,
}

/// The store's probe as the health answer shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoreHealth {
    /// Whether the probe write committed.
    pub ok: bool,
    /// Why it did not; `None` when it did.
    pub error: Option<String>,
}
