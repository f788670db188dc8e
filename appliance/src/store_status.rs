//! What the front-ends may ask of the store themselves: whether it takes writes (readiness)
//! and its gauges (`/metrics`). Every read or change of data goes through a service; this
//! handle offers none, so the HTTP layer never holds the store itself.

use std::sync::Arc;

use crate::config_watch::ConfigWatch;
use crate::store::{Store, StoreError};
pub use countersign_store::StoreGauges;

/// The store as the readiness and metrics endpoints see it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct StoreStatus {
    store: Arc<Store>,
    watch: ConfigWatch,
}

impl StoreStatus {
    /// The status handle of this store; `watch` says whether this appliance's view of changes
    /// other appliances made is current.
    pub fn new(store: Arc<Store>, watch: ConfigWatch) -> StoreStatus {
        StoreStatus { store, watch }
    }

    /// Why this appliance's view of the configuration is stale (another appliance's change
    /// may not have reached it), if it is.
    pub fn config_stale(&self) -> Option<String> {
        self.watch.stale()
    }

    /// Whether the store takes writes: at least `min_free` bytes free where the database lives,
    /// and a probe write commits. `Err`: the reason, in words an operator acts on. Blocking:
    /// run it off the async runtime, with a timeout.
    pub fn check_writable(&self, min_free: u64, now_ms: i64) -> Result<(), String> {
        self.store.check_writable(min_free, now_ms)
    }

    /// Row counts and sizes for `/metrics`, from a read connection of its own. Blocking.
    pub fn gauges(&self) -> Result<StoreGauges, StoreError> {
        self.store.gauges()
    }
}
