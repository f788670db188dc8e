//! What the front-ends may ask of the HSM themselves: its state, a probe, its metrics, and
//! random bytes (privacyIDEA's `getRandom`). Every key operation goes through a service; this
//! handle offers none, so the HTTP layer never holds the HSM itself.

use countersign_hsm::Hsm;
pub use countersign_hsm::{Health, HsmMetricsSnapshot};

/// The HSM as the health, readiness and metrics endpoints see it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct HsmStatus {
    hsm: Hsm,
}

impl HsmStatus {
    /// The status handle of this HSM.
    pub fn new(hsm: Hsm) -> HsmStatus {
        HsmStatus { hsm }
    }

    /// The state last seen (no call to the token).
    pub fn health(&self) -> Health {
        self.hsm.health()
    }

    /// Asks the token for one random byte, recovering the sessions if it can. Blocking: run it
    /// off the async runtime, with a timeout.
    pub fn probe(&self) -> Health {
        self.hsm.probe()
    }

    /// Operation counts and latencies.
    pub fn metrics(&self) -> HsmMetricsSnapshot {
        self.hsm.metrics()
    }

    /// `len` random bytes from the token (asked off the async runtime). `Err`: why the token
    /// gave none.
    pub async fn random(&self, len: usize) -> Result<Vec<u8>, String> {
        let hsm = self.hsm.clone();
        match tokio::task::spawn_blocking(move || hsm.random(len)).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    }
}
