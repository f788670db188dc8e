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

/// A token type's gateways, in failover order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Route {
    /// The token type (`sms`, `email`).
    pub token_type: String,
    /// The gateways tried, first to last.
    pub gateways: Vec<String>,
}

/// `GET /v1/admin/gateway-routes`: every token type's route.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RouteList {
    /// The routes.
    pub routes: Vec<Route>,
}

/// `PUT /v1/admin/gateway-routes/{token_type}`: a token type's new failover order.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteRequest {
    /// The gateways to try, first to last.
    pub gateways: Vec<String>,
}
