//! Message gateways as the native API shows them (`/v1/admin/gateways`).

use serde::{Deserialize, Serialize};

/// The outcome of one delivery attempt through one gateway.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attempt {
    /// The gateway tried.
    pub gateway: String,
    /// Whether it delivered.
    pub delivered: bool,
    /// What the plugin or the transport said, with the code replaced by `***`.
    pub detail: String,
}
